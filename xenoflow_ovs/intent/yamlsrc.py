"""YAML loading that remembers where every value came from.

Config errors must name the key path *and* the line, so we compose the YAML node
graph ourselves instead of using safe_load, which forgets positions and silently
keeps the last of two duplicate keys.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import yaml

Path = Tuple[Any, ...]


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + str(part)
    return out or "<top>"


class SourceError(Exception):
    """The file is not YAML we can read (syntax, duplicate keys, non-string keys)."""

    def __init__(self, problems: List[Tuple[str, str, int]]):
        self.problems = problems
        super().__init__("; ".join(p[1] for p in problems))


class Located:
    """The plain data of a YAML document plus a path -> line map."""

    def __init__(self, data: Any, lines: Dict[Path, int]):
        self.data = data
        self.lines = lines

    def line(self, path: Path) -> int:
        # An error about a missing child points at its parent's line.
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 0)


def load(text: str) -> Located:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise SourceError([("<yaml>", "YAML syntax error: %s" % problem, line)])
    lines: Dict[Path, int] = {}
    problems: List[Tuple[str, str, int]] = []
    data = _convert(root, (), lines, problems) if root is not None else None
    if problems:
        raise SourceError(problems)
    return Located(data, lines)


def _convert(node: yaml.Node, path: Path, lines: Dict[Path, int], problems: list) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: Dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append((format_path(path), "keys must be plain strings",
                                 key_node.start_mark.line + 1))
                continue
            key = key_node.value
            if key in out:
                problems.append((format_path(path + (key,)), "duplicate key %r" % key,
                                 key_node.start_mark.line + 1))
                continue
            out[key] = _convert(value_node, path + (key,), lines, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), lines, problems) for i, item in enumerate(node.value)]
    # Scalars: let the safe constructor resolve ints, bools, nulls, strings. It refuses
    # unsafe tags (!!python/...) and chokes on bad timestamps: both are config errors.
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        problems.append((format_path(path), "unreadable value %r: %s" % (node.value, problem),
                         node.start_mark.line + 1))
        return None
