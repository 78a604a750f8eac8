"""The dashboard's files keep to the rules its Content-Security-Policy and its users rely on: no
markup built from strings, no inline scripts or styles, and nothing loaded from another host."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "navarch" / "api" / "ui" / "static"


def _files(suffix: str) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(STATIC.glob(f"*{suffix}"))}


def test_scripts_never_turn_strings_into_markup():
    scripts = _files(".js")
    assert {"app.js", "api.js", "charts.js", "fleet.js", "nodes.js", "node.js"} <= set(scripts)
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    )
    found = {name: sinks.findall(text) for name, text in scripts.items() if sinks.search(text)}
    assert found == {}


def test_pages_have_no_inline_scripts_styles_or_other_hosts():
    pages = _files(".html")
    assert set(pages) == {"index.html", "signin.html"}
    for name, text in pages.items():
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", text) == [], name
        assert re.findall(r"\sstyle=|<style|\son[a-z]+=", text) == [], name
        assert re.findall(r"(?:src|href|action)=\"(?!/ui/)", text) == [], name


def test_nothing_names_another_host():
    for name, text in {**_files(".js"), **_files(".css"), **_files(".html")}.items():
        hosts = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text)
        # The SVG namespace is a name, never fetched.
        assert [host for host in hosts if host != "http://www.w3.org"] == [], name
