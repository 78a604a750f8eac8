"""The XID catalog data, and the tables in docs/xid.md that are generated from it.

To regenerate the tables after changing navarch/telemetry/xid_catalog.json:

    python tests/telemetry/test_xid_catalog.py
"""

from __future__ import annotations

from pathlib import Path

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
    codes = ["| XID | Name | Mnemonic | Immediate | Investigatory | Description |"]
    codes += ["|---|---|---|---|---|---|"]
    for e in cat.entries.values():
        imm, inv = (f"`{b}`" if b else "none" for b in (e.immediate, e.investigatory))
        codes.append(f"| {e.code} | {e.name} | `{e.mnemonic}` | {imm} | {inv} | {e.description} |")
    return {"xid-buckets": "\n".join(buckets) + "\n", "xid-catalog": "\n".join(codes) + "\n"}


def bounds(page: str, name: str) -> tuple[int, int]:
    start = page.index(f"<!-- {name}:start -->\n") + len(f"<!-- {name}:start -->\n")
    return start, page.index(f"<!-- {name}:end -->", start)


def test_covers_every_code_of_the_reference_table() -> None:
    assert REFERENCE_CODES - set(catalog().entries) == set()


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
