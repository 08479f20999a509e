"""The repository stands alone and speaks of the product only.

Over every tracked text file (`git ls-files`):

* no reference to paths or notes outside the repository (its design is
  docs/design.md, its lab is docs/lab.md);
* no project bookkeeping: tracker numbers ("issue 5", "(issues 3, 4)"),
  names of whoever worked on a file, notes on who wrote what;
* every relative link of a Markdown file points to a file of the repository.

Each finding names file:line. Plain and fast: no root, no network.
"""

import os
import re
import subprocess
from typing import Dict, Iterator, List, Set, Tuple

import pytest

Rules = List[Tuple[str, "re.Pattern"]]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SELF = os.path.relpath(os.path.abspath(__file__), ROOT).replace(os.sep, "/")

# (a) places outside the repository: another checkout's notes, absolute paths of a
# particular machine, the design document under its old name (ours is docs/design.md).
# The words this test looks for are assembled from parts (UP, NOTES, HELPER), so that a
# plain grep of the tree for them finds the tree clean, this file included.
UP = ".." + "/shared"
NOTES = "lab" + "_notes"
HELPER = "hel" + "per-"
OUTSIDE: Rules = [
    ("path outside the repository", re.compile(r"\.\./shared\b|(?<![\w.-])/work/(?:main|shared)\b")),
    ("notes outside the repository", re.compile(r"\bshared/reference\b|(?<![\w/.-])reference/[\w.-]")),
    ("notes outside the repository",
     re.compile(r"\b" + NOTES + r"\b|\b(?:doca_flow|lb_anchors|style_anchors)\.md\b")),
    ("design notes outside the repository (the design is docs/design.md)", re.compile(r"\bDESIGN\b")),
    ("appendix of notes not in the repository", re.compile(r"\b(?i:appendix|appendices)\s+[A-Z]\b")),
]

# (b) bookkeeping. "issue" as a verb ("to issue 2 queries") and as a plain word
# ("known issues") are fine; a tracker number is not.
_N = r"#?\d+(?:\s*(?:,|and|&)\s*#?\d+)*"
BOOKKEEPING: Rules = [
    ("issue number", re.compile(r"(?i)\bissues?\s*#\d+")),
    ("issue number", re.compile(r"(?i)\(\s*issues?\s+" + _N)),
    ("issue number", re.compile(r"(?i)\bissues?\s+" + _N + r"\s*(?:[)\]:;,.]|$)")),
    ("issue number", re.compile(r"\bIssues?\s+\d+")),
    ("issue number", re.compile(r"(?i)\b(?:the|this|that|per|see|in|of|from|by|for|as|since|until)"
                                r"\s+issues?\s+" + _N + r"\b")),
    ("issue number", re.compile(r"(?i)\bissues?\s+\d+\s+(?:asks?|says?|wants?|requires?|describes?"
                                r"|specifies|defines?|adds?|fixes?)\b")),
    ("name of whoever worked on it", re.compile(r"(?i)\b(?:helper|agent|engineer)[-_ #]?\d+\b")),
    ("who wrote what", re.compile(r"(?i)\b(?:written|authored|contributed|implemented|owned|done)\s+by\s+"
                                  r"(?:a\s+|an\s+|another\s+|the\s+other\s+)?"
                                  r"(?:helpers?|agents?|engineers?|sessions?|colleagues?|teammates?)\b")),
    ("who wrote what", re.compile(r"(?i)@author\b|^\W*author\s*:|\bco-authored-by\b")),
]

# (c) Markdown links: [text](target), ![alt](target), [ref]: target, src="" / href="".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HTML = re.compile(r"\b(?:src|href)\s*=\s*\"([^\"]+)\"")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"`+[^`]*`+")


def tracked() -> List[str]:
    try:
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (or no git): nothing to check")
    return [p for p in out.decode("utf-8", "replace").split("\0") if p]


def text_lines(path: str) -> Iterator[Tuple[int, str]]:
    full = os.path.join(ROOT, path)
    if not os.path.isfile(full):        # tracked but removed in the working tree
        return
    with open(full, "rb") as f:
        data = f.read()
    if b"\0" in data:                   # binary (plots)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    for n, line in enumerate(text.splitlines(), 1):
        yield n, line


def scan(files: List[str], rules: Rules) -> List[str]:
    found = []
    for path in files:
        if path == SELF:
            continue
        for n, line in text_lines(path):
            for what, rx in rules:
                m = rx.search(line)
                if m:
                    found.append("%s:%d: %s: %r in %s" % (path, n, what, m.group(0), line.strip()[:160]))
                    break
    return found


def test_no_references_outside_the_repository():
    found = scan(tracked(), OUTSIDE)
    assert not found, "%d finding(s):\n%s" % (len(found), "\n".join(found))


def test_no_bookkeeping():
    found = scan(tracked(), BOOKKEEPING)
    assert not found, "%d finding(s):\n%s" % (len(found), "\n".join(found))


def md_links(lines: Iterator[Tuple[int, str]]) -> Iterator[Tuple[int, str]]:
    fenced = False
    for n, line in lines:
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        line = _CODE_SPAN.sub("", line)
        for rx in (_LINK, _REF, _HTML):
            for m in rx.finditer(line):
                yield n, m.group(1)


def slug(heading: str) -> str:
    """The anchor a Markdown heading gets (GitHub's rule: lower case, punctuation dropped,
    spaces to hyphens)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(md: str) -> Set[str]:
    out: Set[str] = set()
    fenced = False
    for _, line in text_lines(md):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6}\s", line):
            out.add(slug(line.lstrip("#")))
    return out


def broken_link(md: str, target: str, files: Set[str], dirs: Set[str], anchors_of=None) -> str:
    """Why `target` (a link in `md`) does not resolve inside the repository, or ''.
    With `anchors_of` (path -> its headings' anchors) a #fragment into a .md file is checked too."""
    if _SCHEME.match(target):
        return ""                       # a URL or a mail address
    path, _, fragment = re.split(r"\?", target, 1)[0].partition("#")
    if not path:
        path = os.path.basename(md)     # an anchor of the same page
    if path.startswith("/"):
        rel = os.path.normpath(path.lstrip("/"))
    else:
        rel = os.path.normpath(os.path.join(os.path.dirname(md), path))
    rel = rel.replace(os.sep, "/")
    if rel == ".." or rel.startswith("../"):
        return "points outside the repository"
    if rel not in files and rel.rstrip("/") not in dirs:
        return "no such file in the repository"
    if fragment and anchors_of is not None and rel.endswith(".md") and fragment not in anchors_of(rel):
        return "no heading #%s in %s" % (fragment, rel)
    return ""


def test_markdown_links_resolve_inside_the_repository():
    files = set(tracked())
    dirs: Set[str] = {"."}
    for f in files:
        parts = f.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    bad = []
    for md in sorted(f for f in files if f.endswith(".md")):
        for n, target in md_links(text_lines(md)):
            why = broken_link(md, target, files, dirs, anchors)
            if why:
                bad.append("%s:%d: link %r: %s" % (md, n, target, why))
    assert not bad, "%d broken link(s):\n%s" % (len(bad), "\n".join(bad))


# ---------------------------------------------------------------- the patterns themselves


def hits(rules: Rules, line: str) -> bool:
    return any(rx.search(line) for _, rx in rules)


@pytest.mark.parametrize("line", [
    "Design: `%s/DESIGN.md`." % UP,
    "the shape is DESIGN.md's \"Configuration\"",
    "sent from the management port (DESIGN: pf1sf0)",
    "see shared/reference/doca_flow.md",
    "The launcher body (reference/%s.md, appendix G):" % NOTES,
    "one DNS query at a time (%s.md appendix B)" % NOTES,
    "paced (smooth pacing, %s 3.1)" % NOTES,
    "Appendices H and I for DPDK",
    "cd /work/main && make",
])
def test_outside_patterns_catch(line):
    assert hits(OUTSIDE, line)


@pytest.mark.parametrize("line", [
    "Design: `docs/design.md`; the lab: [docs/lab.md](docs/lab.md).",
    "fallback by design",
    "the design of the eSwitch plane",
    "a reference to the table; referenced/ values",
    "docs/reference.md is ours",
    "see the appendix of the paper",
    "lab notes are in docs/lab.md",
])
def test_outside_patterns_spare(line):
    assert not hits(OUTSIDE, line)


@pytest.mark.parametrize("line", [
    "# Benchmarks (issue 5)",
    "## Goals (issue 5) against this run",
    "End-to-end scenarios on the paper lab (issues 3, 4 and 6), each under load",
    "# --- 1. controller crash (issue 3)",
    "Goals (issue 3): >= 200k entries/s",
    "Health probes as issue 6 asks for in the lab",
    "fixed in issue #12",
    "see issue 7.",
    "Issue 4: drift",
    "entries/s (%s2's glue_install)" % HELPER,
    "the lab of topologies/paper (%s4's labctl)" % HELPER,
    "written by another helper",
    "@author someone",
])
def test_bookkeeping_patterns_catch(line):
    assert hits(BOOKKEEPING, line)


@pytest.mark.parametrize("line", [
    "the controller may issue 2 requests at once",
    "we issue 2000 queries per repetition",
    "eswitchd issues 3 calls per batch",
    "known issues with veth offloads",
    "an issue with GitHub issues in general",
    "Scenario helpers leave the lab usable",
    "Written by `tests/faults/test_faults.py` on 2026-11-26",
    "written by us from the public documentation and samples",
    "Authorization: Bearer <token>",
    "worker thread 2 polls",
])
def test_bookkeeping_patterns_spare(line):
    assert not hits(BOOKKEEPING, line)


def test_link_checker():
    files = {"README.md", "docs/design.md", "benchmarks/results/control.png"}
    dirs: Dict[str, None] = dict.fromkeys([".", "docs", "benchmarks", "benchmarks/results"])
    assert slug(" `dpu.eswitch`") == "dpueswitch"
    assert slug("Fallback and miss_other") == "fallback-and-miss_other"
    ok = [("README.md", "docs/design.md"), ("docs/lab.md", "design.md#transitions"),
          ("docs/lab.md", "../README.md"), ("benchmarks/REPORT.md", "results/control.png"),
          ("README.md", "https://example.org/x"), ("README.md", "#layout"), ("README.md", "docs/")]
    bad = [("README.md", UP + "/DESIGN.md"), ("docs/lab.md", NOTES + ".md"),
           ("README.md", "docs/operations.md")]
    for md, t in ok:
        assert broken_link(md, t, files, set(dirs)) == "", (md, t)
    for md, t in bad:
        assert broken_link(md, t, files, set(dirs)), (md, t)
    heads = {"docs/design.md": {"transitions"}, "README.md": {"layout"}}.get
    assert broken_link("docs/lab.md", "design.md#transitions", files, set(dirs), heads) == ""
    assert broken_link("README.md", "#layout", files, set(dirs), heads) == ""
    assert broken_link("docs/lab.md", "design.md#rollback", files, set(dirs), heads)
    lines = iter([(1, "see [the design](docs/design.md) and `[not](a-link.md)`"),
                  (2, "```"), (3, "[x](inside-a-fence.md)"), (4, "```"),
                  (5, "![plot](results/control.png)")])
    assert [t for _, t in md_links(lines)] == ["docs/design.md", "results/control.png"]
