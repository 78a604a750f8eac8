"""The XID catalog data, the script that generates it, and the tables in docs/xid.md.

To regenerate the catalog and then the tables:

    python -m navarch.telemetry.xid_catalog_build
    python tests/telemetry/test_xid_catalog.py
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import pytest

from navarch.telemetry import xid_catalog_build
from navarch.telemetry.xid_catalog import catalog, lookup

DOC = Path(__file__).resolve().parents[2] / "docs" / "xid.md"

# Every code in the table of gpu-health.md section 1.2, ranges expanded.
_UP_TO_95 = {8, 13, 31, 32, 43, 45, 46, 48, 54, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95}
_FROM_109 = {109, 110, 119, 120, 121, 136, 137, 140, 143, 151, 154, 155, 156, 157, 158, 160, 161}
REFERENCE_CODES = _UP_TO_95 | _FROM_109 | set(range(144, 151)) | set(range(162, 173))


def tables() -> dict[str, str]:
    """The generated tables by the name of their markers in the page."""
    cat = catalog()
    buckets = ["| Bucket | What it asks for |", "|---|---|"]
    buckets += [f"| `{bucket}` | {meaning} |" for bucket, meaning in cat.buckets.items()]
    codes = ["| XID | Name | Mnemonic | Immediate | Investigatory | Applies to | Description |"]
    codes += ["|---|---|---|---|---|---|---|"]
    for e in cat.entries.values():
        imm, inv = (f"`{b}`" if b else "none" for b in (e.immediate, e.investigatory))
        arch = ", ".join(e.architectures) or "none"
        codes.append(
            f"| {e.code} | {e.name} | `{e.mnemonic}` | {imm} | {inv} | {arch} | {e.description} |"
        )
    return {"xid-buckets": "\n".join(buckets) + "\n", "xid-catalog": "\n".join(codes) + "\n"}


def bounds(page: str, name: str) -> tuple[int, int]:
    start = page.index(f"<!-- {name}:start -->\n") + len(f"<!-- {name}:start -->\n")
    return start, page.index(f"<!-- {name}:end -->", start)


def test_the_data_file_is_what_the_build_script_makes() -> None:
    text = xid_catalog_build.CATALOG.read_text("utf-8")
    assert text == xid_catalog_build.render(xid_catalog_build.build()), (
        "run: python -m navarch.telemetry.xid_catalog_build"
    )


def test_lists_every_code_of_nvidias_table() -> None:
    table = json.loads(xid_catalog_build.NVIDIA_TABLE.read_text("utf-8"))
    assert table["source"] == "https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html"
    assert list(catalog().entries) == list(range(1, 173))
    assert REFERENCE_CODES - set(catalog().entries) == set()
    unused = [e.code for e in catalog().entries.values() if e.unused]
    assert len(unused) == 63
    in_use = [e.code for e in catalog().entries.values() if e.architectures]
    assert len(in_use) == 109


def test_codes_in_use_on_data_centre_gpus() -> None:
    # Codes that NVIDIA applies to A100, H100, B100 or GB200 and navarch's catalog once lacked.
    once_missing = {11, 25, 37, 40, 41, 44, 66, 67, 70, 71, 72, 75, 76, 77, 80, 82, 83, 84, 85}
    once_missing |= {86, 88, 89, 93, *range(96, 108), *range(126, 136), 139, 141, 142, 159}
    for code in once_missing:
        entry = lookup(code)
        assert entry is not None and entry.architectures and not entry.unused, code
    assert lookup(40).architectures == ("A100", "H100", "B100", "GB200")  # type: ignore[union-attr]
    assert lookup(93).architectures == ("A100",)  # type: ignore[union-attr]
    assert lookup(142).architectures == ("GB200",)  # type: ignore[union-attr]
    assert lookup(159).immediate == "CHECK_UVM"  # type: ignore[union-attr]
    assert lookup(74).architectures == ("A100", "H100")  # type: ignore[union-attr]
    assert lookup(149).architectures == ("B100", "GB200")  # type: ignore[union-attr]


def test_unused_codes_keep_nvidias_marker() -> None:
    for code in (1, 42, 61, 87, 138):
        entry = lookup(code)
        assert entry is not None
        assert (entry.unused, entry.name, entry.nvidia_description) == (True, "Unused", "Unused")
        assert (entry.immediate, entry.architectures) == ("CONTACT_SUPPORT", ())
    # NVIDIA marks 14 and 108 unused but still lists them for every architecture.
    assert lookup(14).unused and lookup(14).architectures  # type: ignore[union-attr]
    assert lookup(108).investigatory == "XID_137_FLOW"  # type: ignore[union-attr]


def _source() -> tuple[dict[str, object], dict[str, object]]:
    table = json.loads(xid_catalog_build.NVIDIA_TABLE.read_text("utf-8"))
    notes = tomllib.loads(xid_catalog_build.NOTES.read_text("utf-8"))
    return table, notes


def test_the_build_names_a_code_in_use_without_notes() -> None:
    table, notes = _source()
    del notes["codes"]["40"]  # type: ignore[attr-defined]
    with pytest.raises(xid_catalog_build.CatalogSourceError, match=r"XID 40 is in use"):
        xid_catalog_build.build(table, notes)


def test_the_build_names_a_bucket_without_a_meaning() -> None:
    table, notes = _source()
    rows = copy.deepcopy(table["rows"])
    rows[77][8] = "REPLACE_EVERYTHING"  # XID 78
    with pytest.raises(xid_catalog_build.CatalogSourceError, match=r"XID 78: bucket"):
        xid_catalog_build.build({**table, "rows": rows}, notes)


def test_the_build_refuses_an_architecture_cell_it_cannot_read() -> None:
    table, notes = _source()
    rows = copy.deepcopy(table["rows"])
    rows[0][4] = "maybe"
    with pytest.raises(xid_catalog_build.CatalogSourceError, match=r"XID 1: 'Applies to A100'"):
        xid_catalog_build.build({**table, "rows": rows}, notes)


def test_entries_are_complete_and_use_known_buckets() -> None:
    cat = catalog()
    assert list(cat.entries) == sorted(cat.entries)
    for code, entry in cat.entries.items():
        assert entry.code == code
        assert entry.mnemonic and entry.name and entry.description
        assert "|" not in entry.description + entry.name
        for bucket in (entry.immediate, entry.investigatory):
            assert bucket is None or bucket in cat.buckets, (code, bucket)
    used = {b for e in cat.entries.values() for b in (e.immediate, e.investigatory)}
    assert set(cat.buckets) == used - {None}


def test_buckets_follow_nvidia_not_a_hand_written_fatal_list() -> None:
    def buckets(code: int) -> tuple[str | None, str | None]:
        entry = lookup(code)
        assert entry is not None
        return entry.immediate, entry.investigatory

    assert buckets(13) == ("RESTART_APP", "WORKFLOW_XID_13")
    assert buckets(31) == ("RESTART_APP", "WORKFLOW_XID_31")
    assert buckets(43) == ("IGNORE", "CONTACT_SUPPORT")
    assert buckets(45) == ("WORKFLOW_XID_45", None)
    assert buckets(74) == ("WORKFLOW_NVLINK_ERR", "CONTACT_SUPPORT")
    assert buckets(78) == ("UPDATE_SWFW", "UPDATE_SWFW")
    assert buckets(94) == ("RESTART_APP", "IGNORE")
    assert buckets(119) == ("RESET_GPU", "INVESTIGATE_SW")
    assert buckets(79) == ("RESTART_BM", "CONTACT_SUPPORT")
    assert buckets(48) == ("WORKFLOW_XID_48", "WORKFLOW_XID_48")
    assert buckets(63) == ("IGNORE", "IGNORE")
    assert buckets(95) == ("RESET_GPU", "IGNORE")
    assert buckets(154) == ("XID_154", None)
    assert buckets(149) == ("WORKFLOW_NVLINK5_ERR", "WORKFLOW_NVLINK5_ERR")
    assert all(buckets(code) == (None, None) for code in range(162, 173))
    # The earlier Go version treated these as fatal; NVIDIA's catalog does not.
    for code in (13, 31, 43, 45, 68, 92, 94):
        assert buckets(code)[0] in {"RESTART_APP", "IGNORE", "WORKFLOW_XID_13", "WORKFLOW_XID_45"}


def test_unknown_codes_have_no_entry() -> None:
    assert lookup(999) is None
    assert lookup(173) is None
    assert lookup(0) is None


def test_docs_tables_match_the_data() -> None:
    page = DOC.read_text()
    for name, table in tables().items():
        start, end = bounds(page, name)
        assert page[start:end] == table, "run: python tests/telemetry/test_xid_catalog.py"


if __name__ == "__main__":
    page = DOC.read_text()
    for name, table in tables().items():
        start, end = bounds(page, name)
        page = page[:start] + table + page[end:]
    DOC.write_text(page)
