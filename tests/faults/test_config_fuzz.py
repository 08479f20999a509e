"""Bad input, config: a mutation fuzzer over the example configs.

Every mutant must either be a valid config or be rejected with exit 2 and at
least one message naming a key path; nothing may raise anything else. Bounded
by hypothesis' example count, so it runs in seconds in CI.
"""

import glob
import os
import random

from config_mutants import mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xenoflow_ovs.cli import main as cli_main
from xenoflow_ovs.intent import config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "topologies", "*", "xenoflow.yaml")))
def test_examples_exist_and_are_valid():
    assert EXAMPLES
    for path in EXAMPLES:
        config.load(path)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2 ** 32), st.sampled_from(EXAMPLES or [""]))
def test_mutants_are_accepted_or_rejected_with_located_errors(seed, path):
    text = mutate(open(path).read(), random.Random(seed))
    try:
        config.parse(text, source="mutant.yaml")
    except config.ConfigError as exc:
        assert exc.problems, "rejected without a reason"
        for key_path, msg, _line in exc.problems:
            assert key_path and msg
        return


def test_cli_exit_code_on_mutants(tmp_path, capsys):
    rnd = random.Random(7)
    rejected = 0
    for n in range(60):
        f = tmp_path / ("m%d.yaml" % n)
        f.write_text(mutate(open(EXAMPLES[0]).read(), rnd))
        rc = cli_main(["check-config", str(f)])
        out = capsys.readouterr()
        assert rc in (0, 2)
        if rc == 2:
            rejected += 1
            assert str(f) in out.err and "Traceback" not in out.err
    assert rejected > 20  # the fuzzer really produces broken files
