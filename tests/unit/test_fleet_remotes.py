"""Store remotes as users write them: a relative unix:PATH means relative to where they
are (the command line) or to the config file, never to the OVS library's run directory."""
import os

import yaml

from xenoflow_ovs.fleet.follower import store_remotes
from xenoflow_ovs.fleet.store import absolute_remotes
from xenoflow_ovs.intent import config


def test_relative_unix_remotes_become_absolute_and_the_rest_stay():
    given = ["unix:run/s1.sock", "punix:s2.sock", "unix:/abs/s3.sock", "tcp:198.18.0.9:6641"]
    assert absolute_remotes(given, "/srv/x") == [
        "unix:/srv/x/run/s1.sock", "punix:/srv/x/s2.sock", "unix:/abs/s3.sock", "tcp:198.18.0.9:6641"]
    assert absolute_remotes(["unix:s.sock"]) == ["unix:" + os.path.join(os.getcwd(), "s.sock")]


def test_a_configs_relative_remote_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "dpu.yaml"
    paper = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "paper", "xenoflow.yaml")
    data = config.to_data(config.load(paper))
    del data["services"]
    data["fleet"] = {"remotes": ["unix:store/s1.sock", "tcp:198.18.0.9:6641"]}
    path.write_text(yaml.safe_dump(data))
    cfg = config.load(str(path))
    assert store_remotes(cfg) == ["unix:%s/store/s1.sock" % tmp_path, "tcp:198.18.0.9:6641"]
