"""pip wrapper for the Ryu 4.34 tox env (Python 3.9).

Ryu 4.34 does not build with setuptools >= 58 nor in an isolated build env, and
pip >= 25.3 (PEP 517 only) builds its sdist as version 0.0.0 (pbr), so every
install into that env first makes sure pip<25.3, setuptools<58 and wheel are
there, then runs pip without build isolation. tox calls this as install_command.
"""
import subprocess
import sys


def main(argv):
    pip = [sys.executable, "-m", "pip"]
    subprocess.check_call(pip + ["install", "-q", "--disable-pip-version-check",
                                  "pip<25.3", "setuptools<58", "wheel"])
    return subprocess.call(pip + ["install", "--no-build-isolation"] + argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
