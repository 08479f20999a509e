"""The dashboard's files: a fixed list served by name, with their content types; any other
name (another file of the package, a path, a traversal) is refused."""
from __future__ import annotations

import pytest

from xenoflow_ovs import dashboard


def test_every_listed_file_is_served_with_its_type():
    assert set(dashboard.ASSETS) == {"index.html", "dashboard.js", "dashboard.css"}
    types = {name: dashboard.asset(name)[1] for name in dashboard.ASSETS}
    assert types == {"index.html": "text/html; charset=utf-8",
                     "dashboard.js": "text/javascript; charset=utf-8",
                     "dashboard.css": "text/css; charset=utf-8"}
    for name in dashboard.ASSETS:
        body, _ = dashboard.asset(name)
        assert isinstance(body, bytes) and len(body) > 500
        body.decode("utf-8")


def test_no_name_is_the_page():
    assert dashboard.asset("") == dashboard.asset("index.html")
    assert b'<script src="dashboard.js"></script>' in dashboard.asset("")[0]
    assert b'href="dashboard.css"' in dashboard.asset("")[0]


@pytest.mark.parametrize("name", [
    "__init__.py", "../api/openapi.yaml", "..", ".", "/etc/passwd", "dashboard.js/", "./dashboard.js",
    "dashboard/../index.html", "..%2F__init__.py", "INDEX.HTML", "index.html\x00", "dashboard.css ",
])
def test_other_names_are_refused(name):
    assert dashboard.asset(name) is None


def test_the_page_needs_nothing_from_elsewhere():
    """No CDN, no absolute URL: the page works offline and behind a relay or a prefix."""
    for name in dashboard.ASSETS:
        text = dashboard.asset(name)[0].decode()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
        assert "//cdn" not in text and "import(" not in text
    js = dashboard.asset("dashboard.js")[0].decode()
    assert 'STATUS_URL = "../status"' in js and ".innerHTML" not in js
