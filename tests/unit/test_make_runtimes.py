"""`make demo` needs Python 3.11 only; `make test` says what the Ryu env needs when
Python 3.9 is missing. install-deps.sh runs without apt (XF_SKIP_APT) and with a PATH
and pyenv root that hold only a Python 3.11."""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def only_311(tmp_path):
    r = subprocess.run([os.path.join(REPO, "scripts", "find-python.sh"), "3.11"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("no Python 3.11")
    if any(os.path.exists(p) for p in ("/usr/bin/python3.9", "/usr/local/bin/python3.9")):
        pytest.skip("a system Python 3.9 is installed: cannot hide it")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    os.symlink(r.stdout.strip(), str(bin_ / "python3.11"))
    env = {"PATH": "%s:/usr/bin:/bin" % bin_, "PYENV_ROOT": str(tmp_path / "no-pyenv"),
           "HOME": str(tmp_path), "XF_SKIP_APT": "1"}
    return env


def _deps(env, **extra):
    return subprocess.run([os.path.join(REPO, "scripts", "install-deps.sh")], cwd=REPO,
                          env=dict(env, **extra), capture_output=True, text=True, timeout=120)


def test_demo_needs_only_python_311(only_311):
    r = _deps(only_311, XF_RUNTIMES="3.11", XF_NO_TOX="1")
    assert r.returncode == 0, r.stderr
    assert "python3.11:" in r.stderr and "3.9" not in r.stderr
    plan = subprocess.run(["make", "-n", "demo"], cwd=REPO, env=only_311, capture_output=True,
                          text=True, timeout=60).stdout
    assert 'XF_RUNTIMES=3.11 XF_NO_TOX=1 scripts/install-deps.sh' in plan
    assert "tox" not in plan.replace("XF_NO_TOX", "")


def test_test_without_python_39_says_what_the_ryu_env_needs(only_311):
    r = _deps(only_311, XF_RUNTIMES="3.11 3.9", XF_NO_TOX="1")
    assert r.returncode == 1
    assert "Python 3.9 missing" in r.stderr and "Ryu" in r.stderr
    assert "XF_TOXENVS=lint,osken" in r.stderr and "XF_PY39" in r.stderr
    assert "Traceback" not in r.stderr
    plan = subprocess.run(["make", "-n", "test", "XF_TOXENVS=lint,osken"], cwd=REPO, env=only_311,
                          capture_output=True, text=True, timeout=60).stdout
    assert 'XF_RUNTIMES="3.11"' in plan
    plan = subprocess.run(["make", "-n", "test"], cwd=REPO, env=only_311, capture_output=True,
                          text=True, timeout=60).stdout
    assert 'XF_RUNTIMES="3.11 3.9"' in plan
