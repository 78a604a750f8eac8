"""Property tests: the parsers never crash, never invent an XID, and both engines agree."""

from __future__ import annotations

import re
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.kmsg import ENGINES, FORMATS, engine_module, record

from navarch.telemetry.xid import NvLink5Error, XidEvent, normalize_bus_id


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> ModuleType:
    return engine_module(request.param)


@pytest.fixture(scope="module")
def both() -> tuple[ModuleType, ModuleType]:
    return engine_module("cffi"), engine_module("python")


VALID = [line.encode() for line, _ in FORMATS.values()]
BARE = re.compile(rb"\): [0-9]+[ \t\r\n]*\Z")

# Pieces of real lines, so that random assembly reaches deep into the grammar.
PIECES = (
    b"NVRM: |Xid (|PCI:|0000:|00000018:|3b:|1f|00|.0|.9|18:00.0|): |79|154|149|46|0|, |,|pid=|1234|"
    b"'<unknown>'|<unknown>|name=|python3|GPU |GPU at |The NVIDIA GPU | has|"
    b": GPU has fallen off the bus| has fallen off the bus|"
    b"fallen off the bus and is not responding|GPU recovery action changed from |0x4|"
    b" (Drain and Reset)| to |0x1|(x)|NETIR_LINK_EVT|NETIR|TLW_RX/PIPE0| Degraded| Fatal| Nonfatal|"
    b" XC0| i0| Link |08|-1|-| (0x004505c6| 0x00000001|)| |   |\\x0a|\n|\r|\t|\x00|\xff|;|6,|-;"
).split(b"|")
assembled = st.lists(st.sampled_from(PIECES), max_size=30).map(b"".join)

blanks = st.sampled_from([b"", b" ", b"  ", b"\t", b" \r\n"])
padding = st.integers(1, 4).map(lambda n: b" " * n)
addresses = st.sampled_from(["PCI:0000:04:00", "0018:01:00", "PCI:00000009:c1:1f.3"])


@st.composite
def nvlink5_lines(draw: st.DrawFn) -> tuple[bytes, NvLink5Error | None]:
    """An NVLink5 line with padding between its fields, any link from -999 to 999 and a unit of
    one to three words; the expected fields are None where the unit is too long."""
    unit = b" ".join(
        draw(
            st.lists(st.from_regex(rb"[A-Za-z0-9_/]{1,20}", fullmatch=True), min_size=1, max_size=3)
        )
    )
    fatal = draw(st.booleans())
    containment, instance = draw(st.integers(0, 99)), draw(st.integers(0, 999))
    link = draw(st.integers(-999, 999))
    intrinfo = draw(st.integers(0, 2**32 - 1))
    status = draw(st.none() | st.integers(0, 2**32 - 1))
    code = draw(st.integers(144, 150))
    pads = [draw(padding) for _ in range(7)]
    line = b"NVRM: Xid (%s): %d, %s%s%s%sXC%d%si%d%sLink%s%0*d%s(0x%08x" % (
        draw(addresses).encode(),
        code,
        unit,
        pads[0],
        b"Fatal" if fatal else b"Nonfatal",
        pads[1],
        containment,
        pads[2],
        instance,
        pads[3],
        pads[4],
        draw(st.integers(1, 3)),
        link,
        pads[5],
        intrinfo,
    )
    if status is not None:
        line += pads[6] + b"0x%x" % status
    line += b")" + draw(blanks)
    if len(unit) > 47:
        return line, None
    return line, NvLink5Error(
        unit=unit.decode(),
        fatal=fatal,
        containment=containment,
        link=link,
        intrinfo=intrinfo,
        error_status=status,
    )


@st.composite
def field_lines(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    """A bare code, or pid= and name= as the last fields, with or without a comma and blanks."""
    code = draw(st.integers(1, 99999))
    head = b"NVRM: Xid (%s): %d" % (draw(addresses).encode(), code)
    if draw(st.booleans()):
        return head + draw(blanks), dict(code=code, pid=-1, process_name=None, message="")
    pid = draw(st.integers(0, 9_999_999_999))
    line = head + b", pid=%d" % pid
    name = None
    if draw(st.booleans()):
        name = draw(st.from_regex(r"[A-Za-z0-9_:.\-][A-Za-z0-9_:. \-]{0,14}", fullmatch=True))
        name = name.rstrip(" ")
        line += b", name=" + name.encode()
    line += draw(st.sampled_from([b"", b","])) + draw(blanks)
    return line, dict(code=code, pid=pid, process_name=name or None, message="")


@st.composite
def short_address_lines(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    """A fallen-off-the-bus line whose address has no PCI domain."""
    bus, device, function = (
        draw(st.integers(0, 255)),
        draw(st.integers(0, 31)),
        draw(st.integers(0, 7)),
    )
    raw = b"%02x:%02x.%d" % (bus, device, function)
    if draw(st.booleans()):
        raw = raw.upper()
    line = (
        draw(
            st.sampled_from(
                [
                    b"NVRM: GPU %s: GPU has fallen off the bus.",
                    b"NVRM: GPU at %s has fallen off the bus.",
                ]
            )
        )
        % raw
    )
    return line, dict(
        code=79,
        inferred=True,
        pci_raw=raw.decode(),
        pci_bus_id=f"00000000:{bus:02X}:{device:02X}.{function}",
    )


shaped = st.one_of(
    nvlink5_lines().map(lambda case: case[0]),
    field_lines().map(lambda case: case[0]),
    short_address_lines().map(lambda case: case[0]),
)
anything = st.one_of(st.binary(max_size=400), assembled, shaped)


def mutated(base: bytes, start: int = 0) -> st.SearchStrategy[bytes]:
    """`base` with up to four byte insertions, deletions or replacements at or after `start`."""
    edit = st.tuples(
        st.sampled_from(["insert", "delete", "replace"]),
        st.integers(start, len(base)),
        st.binary(min_size=1, max_size=3),
    )

    def apply(edits: list[tuple[str, int, bytes]]) -> bytes:
        data = bytearray(base)
        for kind, at, chunk in edits:
            at = min(at, len(data))
            if kind == "insert":
                data[at:at] = chunk
            elif kind == "delete":
                del data[at : at + len(chunk)]
            else:
                data[at : at + len(chunk)] = chunk
        return bytes(data)

    return st.lists(edit, max_size=4).map(apply)


def assert_not_invented(text: bytes, event: XidEvent | None) -> None:
    """An event must be spelled out in the text it came from."""
    if event is None:
        return
    assert b"NVRM: " in text
    raw = event.pci_raw.encode()
    assert normalize_bus_id(event.pci_raw) == event.pci_bus_id
    if event.inferred:
        assert event.code == 79
        assert b"fallen off the bus" in text
        assert raw in text
    else:
        # A comma follows the code, or nothing but blanks up to the end of the line.
        after = rb"(?:,|[ \t\r]*(?:\n|\Z))"
        assert re.search(rb"Xid \(" + re.escape(raw) + rb"\): 0*%d" % event.code + after, text)


@given(st.text(max_size=300).filter(lambda s: "NVRM" not in s))
def test_text_without_the_nvrm_tag_never_yields_an_event(engine: ModuleType, text: str) -> None:
    assert engine.parse_xid(text.encode("utf-8", "surrogatepass")) is None


@given(anything)
def test_random_input_never_crashes_and_never_invents(engine: ModuleType, text: bytes) -> None:
    assert_not_invented(text, engine.parse_xid(text))
    for trust in (False, True):
        rec = engine.parse_record(text, trust_user=trust)
        if rec is not None:
            assert_not_invented(text, rec.xid)
            assert rec.xid is None or rec.facility == 0 or trust


@given(st.one_of(st.sampled_from(VALID), shaped).flatmap(mutated))
def test_mutated_lines_parse_to_nothing_or_to_what_they_say(
    engine: ModuleType, line: bytes
) -> None:
    assert_not_invented(line, engine.parse_xid(line))


@given(st.data())
def test_mutations_after_the_fields_keep_code_and_gpu(
    engine: ModuleType, data: st.DataObject
) -> None:
    # Whatever follows a bare code makes it no XID, so those lines are left out here.
    line = data.draw(st.sampled_from([line for line in VALID if not BARE.search(line)]))
    original = engine.parse_xid(line)
    assert original is not None
    # A fallen-off-the-bus message holds the address and the phrase, so only appending keeps it.
    start = len(line) if original.inferred else line.rindex(original.message.encode()) + 1
    start = min(start, len(line))
    prefix = data.draw(st.binary(max_size=20).filter(lambda b: b"NVRM" not in b and b"\n" not in b))
    changed = prefix + data.draw(mutated(line, start))
    event = engine.parse_xid(changed)
    assert event is not None
    assert (event.code, event.pci_bus_id, event.inferred) == (
        original.code,
        original.pci_bus_id,
        original.inferred,
    )


@given(nvlink5_lines())
def test_nvlink5_lines_decode_with_any_padding_and_link(
    engine: ModuleType, case: tuple[bytes, NvLink5Error | None]
) -> None:
    line, expected = case
    event = engine.parse_xid(line)
    assert event is not None
    assert event.nvlink5 == expected


@given(st.one_of(field_lines(), short_address_lines()))
def test_bare_codes_last_fields_and_short_addresses_decode(
    engine: ModuleType, case: tuple[bytes, dict[str, object]]
) -> None:
    line, expected = case
    event = engine.parse_xid(line)
    assert event is not None
    assert {key: getattr(event, key) for key in expected} == expected


@given(
    seq=st.integers(0, 2**64 - 1),
    ts=st.integers(0, 2**64 - 1),
    facility=st.integers(0, 2**28 - 1),
    level=st.integers(0, 7),
    flag=st.sampled_from("-c+"),
    message=st.binary(max_size=1500).filter(lambda b: b"\n" not in b and not b.endswith(b"\r")),
)
def test_records_round_trip(
    engine: ModuleType, seq: int, ts: int, facility: int, level: int, flag: str, message: bytes
) -> None:
    line = record(seq, message, facility=facility, level=level, ts_usec=ts, flag=flag)
    rec = engine.parse_record(line + b" SUBSYSTEM=pci\n")
    assert rec is not None
    assert (rec.seq, rec.ts_usec, rec.facility, rec.level, rec.flag) == (
        seq,
        ts,
        facility,
        level,
        flag,
    )
    assert rec.truncated == (len(message) > 1023)
    assert rec.text == message[:1023].decode("utf-8", "replace")


@given(anything)
def test_both_engines_agree_on_any_input(both: tuple[ModuleType, ModuleType], text: bytes) -> None:
    c, python = both
    assert c.parse_xid(text) == python.parse_xid(text)
    for trust in (False, True):
        assert c.parse_record(text, trust_user=trust) == python.parse_record(text, trust_user=trust)


@given(st.one_of(st.sampled_from(VALID), shaped).flatmap(mutated), st.integers(0, 1100))
def test_both_engines_agree_on_mutated_records(
    both: tuple[ModuleType, ModuleType], line: bytes, pad: int
) -> None:
    c, python = both
    # Padding moves the XID across the 1023-byte limit of a record's stored text.
    rec = record(7, b"x" * pad + line.replace(b"\n", b" "))
    assert c.parse_record(rec) == python.parse_record(rec)
    assert c.parse_xid(line) == python.parse_xid(line)
