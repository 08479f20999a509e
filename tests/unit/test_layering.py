"""The package's layering, checked on the source: `intent/` is pure.

intent/ turns a config file into both planes' rules and judges what it is shown;
everything that talks to a switch, a daemon, the network or the lab lives in the
other subpackages. A change that makes intent/ reach out fails here, naming the
file and line. Walking the AST (instead of importing) also catches imports inside
functions.
"""

import ast
import os
import sys

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   "xenoflow_ovs")
INTENT = os.path.join(PKG, "intent")

# what intent/ may import: its own modules and these (pure computation, parsing)
ALLOWED = {"__future__", "typing", "dataclasses", "array", "operator", "hashlib", "zlib", "os", "re",
           "itertools", "collections", "functools", "math", "enum", "ipaddress", "yaml", "netaddr"}
# the one place that reads a file: the config loader
OPEN_ALLOWED = {("config.py", "load_yaml")}
# os is allowed for os.path only: anything else on os is I/O or process state
OS_ALLOWED_ATTRS = {"path"}


def _modules():
    for name in sorted(os.listdir(INTENT)):
        if name.endswith(".py"):
            path = os.path.join(INTENT, name)
            with open(path, encoding="utf-8") as f:
                yield name, ast.parse(f.read(), filename=path)


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, node.module or "", node.level


def _enclosing_functions(tree):
    """Map every node to the name of the function it sits in (None at module level)."""
    owner = {}

    def visit(node, fn):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn
            owner[child] = name
            visit(child, name)
    visit(tree, None)
    return owner


def import_findings():
    out = []
    for name, tree in _modules():
        for line, module, level in _imports(tree):
            if level >= 2 or module.startswith("xenoflow_ovs") and not module.startswith(
                    "xenoflow_ovs.intent"):
                out.append("intent/%s:%d imports %s%s (outside intent/)" % (name, line, "." * level,
                                                                            module))
            elif level == 0 and module.split(".")[0] not in ALLOWED | {"xenoflow_ovs"}:
                out.append("intent/%s:%d imports %s (not a pure dependency)" % (name, line, module))
    return out


def io_findings():
    out = []
    for name, tree in _modules():
        owner = _enclosing_functions(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                if (name, owner.get(node)) not in OPEN_ALLOWED:
                    out.append("intent/%s:%d opens a file in %s()" % (name, node.lineno, owner.get(node)))
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "os" and node.attr not in OS_ALLOWED_ATTRS):
                out.append("intent/%s:%d uses os.%s" % (name, node.lineno, node.attr))
    return out


def test_intent_imports_nothing_outside_itself_or_impure():
    assert import_findings() == []


def test_intent_does_no_io_beyond_reading_the_config_file():
    assert io_findings() == []


@pytest.mark.parametrize("source, finding", [
    ("from ..controller import app\n", "imports ..controller"),
    ("import socket\n", "imports socket"),
    ("def f():\n    import subprocess\n", "imports subprocess"),
])
def test_the_import_check_sees_a_violation(tmp_path, monkeypatch, source, finding):
    """The check itself can fail: a planted module is reported."""
    fake = tmp_path / "intent"
    fake.mkdir()
    (fake / "planted.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "INTENT", str(fake))
    assert any(finding in f for f in import_findings())


def test_the_io_check_sees_a_violation(tmp_path, monkeypatch):
    fake = tmp_path / "intent"
    fake.mkdir()
    (fake / "planted.py").write_text("import os\n\ndef dump(p):\n    os.remove(p)\n"
                                     "    return open(p, 'w')\n")
    monkeypatch.setattr(sys.modules[__name__], "INTENT", str(fake))
    found = io_findings()
    assert any("os.remove" in f for f in found) and any("opens a file in dump()" in f for f in found)
