"""The tables of docs/health.md that come from the default policy: its rules, and every XID in
NVIDIA's catalog with what the policy does with it.

`python -m navarch.health.doc_table` prints both tables; `--write docs/health.md` replaces them
between the page's markers. The XID table comes from evaluating the default policy on one XID
event per code, so it says what navarch does, not what someone remembered to write down; the
tests compare the page with the policy again.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from navarch.health.judge import HealthJudge, Match
from navarch.health.policy import Policy, default_policy
from navarch.model import HealthEvent, HealthEventType
from navarch.telemetry.xid_catalog import catalog

# Each table sits between a pair of these markers in the page.
MARKERS = {"rules": "default-rules", "xids": "xid-table"}
XID_HEADER = (
    "| XID | Name | Immediate bucket | Result | Action | Rule |",
    "|---|---|---|---|---|---|",
)
RULES_HEADER = (
    "| Rule | When | Result | Action | Source |",
    "|---|---|---|---|---|",
)


def judge_xid(code: int, policy: Policy | None = None) -> Match:
    """How `policy` judges one XID `code` on GPU 0 with no history, no pid and no message."""
    judge = HealthJudge(policy or default_policy())
    event = HealthEvent(
        type=HealthEventType.XID,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        gpu_index=0,
        xid=code,
    )
    (match,) = judge.evaluate("doc-table", [event], now=0.0).matches
    return match


def rules_table(policy: Policy | None = None) -> str:
    lines = list(RULES_HEADER)
    for rule in (policy or default_policy()).rules:
        when = _cell(rule.description)
        lines.append(
            f"| `{rule.name}` | {when} | {rule.result.value} | {rule.action.value} "
            f"| {_cell(rule.source)} |"
        )
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or "-"


def xid_table(policy: Policy | None = None) -> str:
    lines = list(XID_HEADER)
    for entry in catalog().entries.values():
        match = judge_xid(entry.code, policy)
        lines.append(
            f"| {entry.code} | {entry.name} | {entry.immediate or '-'} | {match.result.value} "
            f"| {match.action.value} | {match.rule or '-'} |"
        )
    return "\n".join(lines) + "\n"


def tables() -> dict[str, str]:
    return {"rules": rules_table(), "xids": xid_table()}


def section(page: str, name: str) -> str:
    """The text between the markers of table `name` in `page`."""
    start, end = _bounds(page, name)
    return page[start:end]


def replace_tables(page: str) -> str:
    """`page` with every generated table replaced by the current one."""
    for name, table in tables().items():
        start, end = _bounds(page, name)
        page = page[:start] + table + page[end:]
    return page


def _bounds(page: str, name: str) -> tuple[int, int]:
    start_marker = f"<!-- {MARKERS[name]}:start -->\n"
    end_marker = f"<!-- {MARKERS[name]}:end -->"
    start = page.index(start_marker) + len(start_marker)
    return start, page.index(end_marker, start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m navarch.health.doc_table")
    parser.add_argument("--write", metavar="PAGE", help="replace the tables in PAGE")
    args = parser.parse_args(argv)
    if args.write:
        path = Path(args.write)
        path.write_text(replace_tables(path.read_text("utf-8")), "utf-8")
    else:
        sys.stdout.write("\n".join(tables().values()))


if __name__ == "__main__":
    main()
