"""docs/health.md and the default policy cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from navarch.health import Action, Result, default_policy
from navarch.health.doc_table import judge_xid, rules_table, section
from navarch.health.variables import EVENT_FIELDS
from navarch.telemetry.xid_catalog import catalog

PAGE = Path(__file__).resolve().parents[2] / "docs" / "health.md"
REGENERATE = "run `python -m navarch.health.doc_table --write docs/health.md`"


def _rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_the_xid_table_lists_every_catalog_code_with_what_the_policy_does():
    rows = _rows(section(PAGE.read_text("utf-8"), "xids"))
    documented = {int(row[0]): row for row in rows}
    assert len(documented) == len(rows), "a code is listed twice"
    assert sorted(documented) == sorted(catalog().entries), REGENERATE
    for code, (_, name, bucket, result, action, rule) in documented.items():
        match = judge_xid(code)
        entry = catalog().entries[code]
        assert (name, bucket) == (entry.name, entry.immediate or "-"), f"XID {code}: {REGENERATE}"
        assert (Result(result), Action(action)) == (match.result, match.action), (
            f"XID {code}: the page says {result}/{action}, the default policy gives "
            f"{match.result.value}/{match.action.value}; {REGENERATE}"
        )
        assert rule == (match.rule or "-"), f"XID {code}: {REGENERATE}"


def test_the_rules_table_matches_the_default_policy():
    page = section(PAGE.read_text("utf-8"), "rules")
    assert page == rules_table(), REGENERATE
    assert [row[0].strip("`") for row in _rows(page)] == [r.name for r in default_policy().rules]


def test_every_event_field_is_documented():
    page = PAGE.read_text("utf-8")
    for name in EVENT_FIELDS:
        assert f"| `{name}` |" in page, name
