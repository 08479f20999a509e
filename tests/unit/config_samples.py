"""The paper lab's config as data, and parsing it as a test would: shared by the config tests."""
from __future__ import annotations

import os

import pytest
import yaml

from xenoflow_ovs.intent import config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")


def paper_data():
    with open(PAPER) as f:
        return yaml.safe_load(f)


def parse(data):
    return config.parse(yaml.safe_dump(data, sort_keys=False))


def errors_of(data):
    with pytest.raises(config.ConfigError) as exc:
        parse(data)
    return exc.value.problems
