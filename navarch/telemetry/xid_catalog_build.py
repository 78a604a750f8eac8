"""Builds xid_catalog.json from NVIDIA's XID catalog and navarch's notes on it.

Two files in data/ hold the input. nvidia_xid_catalog.json is NVIDIA's table as the catalog page
published it, with the page's address and the date of the copy. xid_catalog_notes.toml holds
navarch's own words: what each resolution bucket asks for, and a short name and a description for
every code in use. This module joins them; nothing in xid_catalog.json is written by hand.

To update the catalog to a newer table from NVIDIA:

1. Replace the rows and the date in data/nvidia_xid_catalog.json with the current table.
2. Run `python -m navarch.telemetry.xid_catalog_build`. It names every code in use that has no
   notes, and every bucket without a meaning; add those to the notes and run it again.
3. Rewrite the generated tables of the docs: `python tests/telemetry/test_xid_catalog.py` and
   `python -m navarch.health.doc_table --write docs/health.md`.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NVIDIA_TABLE = HERE / "data" / "nvidia_xid_catalog.json"
NOTES = HERE / "data" / "xid_catalog_notes.toml"
CATALOG = HERE / "xid_catalog.json"

ARCHITECTURES = ("A100", "H100", "B100", "GB200")
_IMMEDIATE = "Resolution Bucket (Immediate Action)"
_INVESTIGATORY = "Resolution Bucket (Investigatory Action)"
_COLUMNS = (
    *("Type (XID)", "Code", "Mnemonic", "Description", _IMMEDIATE, _INVESTIGATORY),
    *(f"Applies to {arch}" for arch in ARCHITECTURES),
)
# NVIDIA's Description for a code it no longer uses.
_UNUSED = "Unused"
# Bucket cells that hold prose instead of a bucket name, and the bucket navarch reads in each.
# XID 45's two-way flow has its own bucket (WORKFLOW_XID_45) in the Immediate column.
_BUCKET_PROSE: dict[str, str | None] = {
    "IGNORE (sympathetic)": "IGNORE",
    "N/A Informational only regarding another Xid": None,
    "Solo: RESTART_FM Not Solo: IGNORE (follow other Xid)": None,
}


class CatalogSourceError(ValueError):
    """NVIDIA's table or the notes do not make a catalog; the message names the place."""


def build(
    table: dict[str, Any] | None = None, notes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The catalog that xid_catalog.json holds, from NVIDIA's table and navarch's notes."""
    table = table if table is not None else json.loads(NVIDIA_TABLE.read_text("utf-8"))
    notes = notes if notes is not None else tomllib.loads(NOTES.read_text("utf-8"))
    buckets: dict[str, str] = notes["buckets"]
    code_notes: dict[str, dict[str, str]] = dict(notes["codes"])
    columns: list[str] = table["columns"]
    missing = [c for c in _COLUMNS if c not in columns]
    if missing:
        raise CatalogSourceError(f"{NVIDIA_TABLE.name}: no column {missing[0]!r}")
    problems: list[str] = []
    codes: list[dict[str, Any]] = []
    for values in table["rows"]:
        row = dict(zip(columns, values, strict=True))
        if row["Type (XID)"] != "XID":
            continue
        code = int(row["Code"])
        where = f"{NVIDIA_TABLE.name}: XID {code}"
        unused = row["Description"] == _UNUSED
        note = code_notes.pop(str(code), None)
        if note is None and not unused:
            problems.append(f"{NOTES.name}: XID {code} is in use and has no [codes.{code}]")
            continue
        immediate = _bucket(row[_IMMEDIATE], where, buckets, problems)
        investigatory = _bucket(row[_INVESTIGATORY], where, buckets, problems)
        codes.append(
            {
                "code": code,
                "mnemonic": row["Mnemonic"],
                "name": note["name"] if note else "Unused",
                "immediate": immediate,
                "investigatory": investigatory,
                "description": note["description"] if note else "The catalog lists it as unused.",
                "nvidia_description": row["Description"],
                "architectures": [a for a in ARCHITECTURES if _applies(row, a, where, problems)],
                "unused": unused,
            }
        )
    problems += [f"{NOTES.name}: [codes.{code}] is not in NVIDIA's table" for code in code_notes]
    if problems:
        raise CatalogSourceError("\n".join(problems))
    codes.sort(key=lambda entry: int(entry["code"]))
    used = {b for e in codes for b in (e["immediate"], e["investigatory"]) if b}
    return {
        "source": f"NVIDIA XID catalog ({table['source']}), snapshot of {table['retrieved']}",
        "buckets": {bucket: meaning for bucket, meaning in buckets.items() if bucket in used},
        "codes": codes,
    }


def _bucket(cell: str, where: str, buckets: dict[str, str], problems: list[str]) -> str | None:
    bucket = _BUCKET_PROSE.get(cell, cell or None)
    if bucket is not None and bucket not in buckets:
        problems.append(f"{where}: bucket {cell!r} has no meaning in {NOTES.name} [buckets]")
    return bucket


def _applies(row: dict[str, str], arch: str, where: str, problems: list[str]) -> bool:
    cell = row[f"Applies to {arch}"]
    if cell not in ("YES", "NO"):
        problems.append(f"{where}: 'Applies to {arch}' is {cell!r}, not YES or NO")
    return cell == "YES"


def render(catalog: dict[str, Any]) -> str:
    """The text of xid_catalog.json for `catalog`."""
    return json.dumps(catalog, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m navarch.telemetry.xid_catalog_build")
    parser.parse_args(argv)
    try:
        text = render(build())
    except CatalogSourceError as exc:
        parser.exit(2, f"{exc}\n")
    CATALOG.write_text(text, "utf-8")


if __name__ == "__main__":
    main()
