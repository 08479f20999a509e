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


def ipv4_udp(data):
    """The paper lab's config with its service as the paper ran it: IPv4 and UDP only (no vip6,
    no backend or management ip6). Tests that derive more services from it keep their VIPs
    and listeners apart this way; the dual-stack service itself is tested on its own."""
    for svc in data["services"]:
        svc.pop("vip6", None)
        svc.pop("protocols", None)
        svc["protocol"] = "udp"
        for b in svc["backends"]:
            b.pop("ip6", None)
    for br in data["ovs"]["bridges"].values():
        for spec in (br.get("internal") or {}).values():
            if isinstance(spec, dict):
                spec.pop("ip6", None)
    return data


def paper_v4_data():
    return ipv4_udp(paper_data())
