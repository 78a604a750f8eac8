"""XID line parsing: every driver format, in both engines, and lines that must not parse."""

from __future__ import annotations

from types import ModuleType

import pytest
from support.kmsg import ENGINES, FORMATS, use_engine

from navarch.telemetry.xid import normalize_bus_id, parse_line


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return use_engine(request.param, monkeypatch)


@pytest.mark.parametrize("name", list(FORMATS))
def test_parses_every_driver_format(engine: ModuleType, name: str) -> None:
    line, expected = FORMATS[name]
    event = parse_line(line)
    assert event is not None
    assert {key: getattr(event, key) for key in expected} == expected
    assert event.source == "text"


def test_nvlink5_subcode_is_bits_20_to_25_of_intrinfo(engine: ModuleType) -> None:
    def subcode(intrinfo: str) -> int:
        line = f"NVRM: Xid (PCI:0000:04:00): 149, NETIR_LINK_EVT Fatal XC0 i0 Link 00 ({intrinfo})"
        event = parse_line(line)
        assert event is not None and event.nvlink5 is not None
        assert event.nvlink5.error_status is None
        return event.nvlink5.subcode

    assert subcode("0x004505c6") == 0x04
    assert subcode("0x02500011") == 0x25
    assert subcode("0xfff00000") == 0x3F


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("NVRM: Xid (PCI:0008:01:00): 154, GPU recovery action changed", "recovery_action"),
        (
            "NVRM: Xid (PCI:0008:01:00): 154, GPU recovery action changed from 0x4 (Drain",
            "recovery_action",
        ),
        ("NVRM: Xid (PCI:0000:04:00): 149, NETIR_LINK_EVT Fatal XC0 i0 Link", "nvlink5"),
        ("NVRM: Xid (PCI:0000:04:00): 149, NETIR_LINK_EVT Serious XC0 i0 Link 1 (0x1)", "nvlink5"),
        ("NVRM: Xid (PCI:0000:04:00): 48, NETIR_LINK_EVT Fatal XC0 i0 Link 1 (0x1)", "nvlink5"),
        (
            "NVRM: Xid (PCI:0000:04:00): 13, GPU recovery action changed from 0x0 (None) to 0x1 "
            "(R)",
            "recovery_action",
        ),
    ],
)
def test_incomplete_details_keep_the_event_without_the_fields(
    engine: ModuleType, line: str, field: str
) -> None:
    event = parse_line(line)
    assert event is not None
    assert getattr(event, field) is None


@pytest.mark.parametrize(
    ("line", "pid", "name", "message"),
    [
        ("13, pid=abc, name=x, detail", -1, None, "pid=abc, name=x, detail"),
        ("13, pid=12, name=" + "n" * 64 + ", detail", 12, None, "name=" + "n" * 64 + ", detail"),
        ("13, pid=12, name=tab\there, detail", 12, None, "name=tab\there, detail"),
        ("13, pid=12, name=" + "n" * 64, 12, None, "name=" + "n" * 64),
        ("13, pid=12, name=tab\tat the end", 12, None, "name=tab\tat the end"),
        ("13, pid=12, name=", 12, None, "name="),
        ("13, pid=12 , name=x, detail", -1, None, "pid=12 , name=x, detail"),
        ("13, pid=12;", -1, None, "pid=12;"),
        ("13, pid=12345678901, x", -1, None, "pid=12345678901, x"),
        ("13, pid=7, name=my job, detail", 7, "my job", "detail"),
        ("13,pid=7, name=x, tight", 7, "x", "tight"),
    ],
)
def test_fields_that_do_not_parse_stay_in_the_message(
    engine: ModuleType, line: str, pid: int, name: str | None, message: str
) -> None:
    event = parse_line("NVRM: Xid (PCI:0000:3b:00): " + line)
    assert event is not None
    assert (event.code, event.pid, event.process_name, event.message) == (13, pid, name, message)


def test_the_last_field_may_end_the_line(engine: ModuleType) -> None:
    def fields(tail: str) -> tuple[int, str | None, str]:
        event = parse_line("NVRM: Xid (PCI:0000:3b:00): 13, " + tail)
        assert event is not None
        return event.pid, event.process_name, event.message

    assert fields("pid=7") == (7, None, "")
    assert fields("pid=7,") == (7, None, "")
    assert fields("pid=7, \n") == (7, None, "")
    assert fields("pid=<unknown>") == (-1, None, "")
    assert fields("pid=7, name=my job") == (7, "my job", "")
    assert fields("pid=7, name=my job,") == (7, "my job", "")
    assert fields("pid=7, name=my job, ") == (7, "my job", "")
    assert fields("pid=7, name='<unknown>'") == (7, None, "")


@pytest.mark.parametrize(
    ("line", "link"),
    [
        ("149, NETIR_LINK_EVT Fatal XC0 i0 Link 08 (0x1)", 8),
        ("149, NETIR_LINK_EVT Fatal XC0 i0 Link -1 (0x1)", -1),
        ("149, NETIR_LINK_EVT Fatal XC0 i0 Link -0 (0x1)", 0),
        ("149,  NETIR_LINK_EVT    Fatal  XC0  i0  Link  -12  (0x1   0x2)", -12),
        ("150, MSE  Degraded Fatal XC0 i0 Link -1 (0x1 0x2)", -1),
        ("149, Fatal Fatal XC0 i0 Link 1 (0x1)", 1),
    ],
)
def test_nvlink5_fields_take_any_padding_and_a_negative_link(
    engine: ModuleType, line: str, link: int
) -> None:
    event = parse_line("NVRM: Xid (PCI:0000:04:00): " + line)
    assert event is not None and event.nvlink5 is not None
    assert event.nvlink5.link == link
    assert event.nvlink5.intrinfo == 1


def test_nvlink5_unit_is_every_word_before_the_severity(engine: ModuleType) -> None:
    def unit(detail: str) -> str | None:
        event = parse_line("NVRM: Xid (PCI:0000:04:00): 150, " + detail)
        assert event is not None
        return event.nvlink5.unit if event.nvlink5 is not None else None

    assert unit("MSE Degraded Fatal XC0 i0 Link -1 (0x0)") == "MSE Degraded"
    assert unit("MSE  Degraded  Nonfatal XC1 i0 Link 2 (0x0)") == "MSE  Degraded"
    assert unit("A" * 47 + " Fatal XC0 i0 Link 1 (0x0)") == "A" * 47
    assert unit("A" * 48 + " Fatal XC0 i0 Link 1 (0x0)") is None
    assert unit("AAAA " * 9 + "A Fatal XC0 i0 Link 1 (0x0)") == "AAAA " * 9 + "A"
    assert unit("AAAA " * 9 + "AAA Fatal XC0 i0 Link 1 (0x0)") is None
    assert unit("MSE, Degraded Fatal XC0 i0 Link 1 (0x0)") is None


@pytest.mark.parametrize(
    "line",
    [
        "NVRM: GPU 18:00.0: GPU has fallen off the bus.",
        "NVRM: GPU at 18:00.0 has fallen off the bus.",
        r"NVRM: The NVIDIA GPU 18:00.0\x0aNVRM: (PCI ID: 10de:2330) installed in this system has"
        r"\x0aNVRM: fallen off the bus and is not responding to commands.",
    ],
)
def test_fallen_off_the_bus_lines_may_leave_out_the_pci_domain(
    engine: ModuleType, line: str
) -> None:
    event = parse_line(line)
    assert event is not None
    assert (event.code, event.inferred, event.pci_bus_id, event.pci_raw) == (
        79,
        True,
        "00000000:18:00.0",
        "18:00.0",
    )


NOT_XID = [
    "",
    "kernel: nvidia-peermem nv_get_p2p_free_callback:127 ERROR detected invalid context",
    "NVRM: Xid (invalid): 13, something",
    "NVRM: GPU at PCI:0000:9b:00: GPU-509665ad-0000-1111-2222-333344445555",
    r"NVRM: The NVIDIA GPU 0000:01:00.0 (PCI ID: 10de:1234)\x0aNVRM: installed in this system is"
    r" not supported by the\x0aNVRM: NVIDIA 470.xx driver release.",
    "NVRM: Xid (PCI:0000:3b:00): 0, zero is not a code",
    "NVRM: Xid (PCI:0000:3b:00): 79 GPU has fallen off the bus",
    "NVRM: Xid (PCI:0000:3b:00): 46x",
    "NVRM: Xid (PCI:0000:3b:00): 46 \nmore",
    "NVRM: Xid (PCI:0000:3b:00): 46.",
    "NVRM: Xid (PCI:0000:3b:00):46",
    "NVRM: Xid 79: GPU has fallen off the bus.",
    "NVRM: Xid (18:00): 79, no domain in an Xid line",
    "NVRM: krcRcAndNotifyAllChannels_IMPL: RC all channels for critical error 79.",
    "NVRM: knvlinkDiscoverPostRxDetLinks_GH100: Getting peer0's postRxDetLinkMask failed!",
    "nvidia-nvswitch3: SXid (PCI:0000:c6:00.0): 20034, Fatal, Link 30 LTSSM Fault Up",
    "Xid 79 seen on GPU 18:00.0: GPU has fallen off the bus.",
    "NVRM: GPU 18:00: GPU has fallen off the bus.",
    "NVRM: GPU 8:00.0: GPU has fallen off the bus.",
    "NVRM: GPU 18:0.0: GPU has fallen off the bus.",
    "NVRM: GPU 18:20.0: GPU has fallen off the bus.",
    "NVRM: GPU 18:00.8: GPU has fallen off the bus.",
    "NVRM: GPU PCI:18:00.0: GPU has fallen off the bus.",
    "NVRM: GPU 18:00.0 GPU has fallen off the bus.",
    "NVRM: Xid (PCI:0000:3b:00: 79, no closing parenthesis",
    "NVRM: Xid (PCI:0000:3b:20): 79, device 0x20 does not exist",
    "NVRM: Xid (PCI:000000000:3b:00): 79, nine-digit domain",
    "NVRM: Xid (PCI:0000:3b): 79, no device",
    "NVRM: Xid (PCI:0000:3b:00.0.1): 79, two functions",
    "NVRM: Xid (PCI:0000:3g:00): 79, not hex",
    "NVRM: Xid (PCI:0000:3b:00): 123456, six digits",
    "NVRM: Xid (PCI:0000:3b:00): -1, negative",
    "NVRM:Xid (PCI:0000:3b:00): 79, no space after NVRM:",
    "nvrm: xid (pci:0000:3b:00): 79, lower case",
    "Xid (PCI:0000:3b:00): 79, without the NVRM: tag",
    "NVRM: GPU 0000:18:00.0: GPU has fallen",
    "NVRM: GPU 0000:18:00.0 has fallen off the bus.",
    "NVRM: GPU at 0000:18:00.0: GPU has fallen off the bus.",
    "NVRM: The NVIDIA GPU 0000:18:00.0 installed in this system has fallen off the bus.",
    "NVRM: fallen off the bus and is not responding to commands.",
]


@pytest.mark.parametrize("line", NOT_XID)
def test_lines_that_are_not_complete_xid_lines_yield_nothing(engine: ModuleType, line: str) -> None:
    assert parse_line(line) is None


def test_takes_the_first_complete_xid_in_the_text(engine: ModuleType) -> None:
    event = parse_line(
        "NVRM: Xid (bad): 1, NVRM: Xid (PCI:0000:3b:00): 13, first NVRM: Xid (0000:01:00): 31, x"
    )
    assert event is not None
    assert (event.code, event.pci_bus_id) == (13, "00000000:3B:00.0")


def test_accepts_str_and_bytes_with_any_content(engine: ModuleType) -> None:
    line = "NVRM: Xid (PCI:0000:3b:00): 13, pid=5, name=jöb, \udcff détail\x00"
    from_str = parse_line(line)
    from_bytes = parse_line(line.encode("utf-8", "surrogatepass"))
    assert from_str == from_bytes
    assert from_str is not None
    assert from_str.process_name == "jöb"
    assert from_str.message.startswith("\ufffd")


def test_kmsg_xid_maps_to_the_bus_id_that_nvml_reports(engine: ModuleType) -> None:
    nvml_bus_ids = {"00000000:3B:00.0": 0, "00000018:01:00.0": 1}
    lines = [
        "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
        "NVRM: Xid (0000:3B:00): 79, GPU has fallen off the bus.",
        "NVRM: Xid (PCI:00000018:01:00): 149, x",
        "NVRM: GPU 0018:01:00.0: GPU has fallen off the bus.",
        "NVRM: GPU 3b:00.0: GPU has fallen off the bus.",
    ]
    indexes = []
    for line in lines:
        event = parse_line(line)
        assert event is not None
        indexes.append(nvml_bus_ids[event.pci_bus_id])
    assert indexes == [0, 0, 1, 1, 0]


@pytest.mark.parametrize(
    ("bus_id", "normalised"),
    [
        ("PCI:0000:3b:00", "00000000:3B:00.0"),
        ("0000:3B:00.0", "00000000:3B:00.0"),
        ("00000000:3B:00.0", "00000000:3B:00.0"),
        (" 0001:c8:1f.7\n", "00000001:C8:1F.7"),
        ("3b:00.0", "00000000:3B:00.0"),
        ("3b:00", None),
        ("3b:20.0", None),
        ("PCI:3b:00.0", None),
        ("b:00.0", None),
        ("0000:3b:00.8", None),
        ("0000:3b:20.0", None),
        ("GPU-509665ad", None),
        ("", None),
    ],
)
def test_normalize_bus_id(bus_id: str, normalised: str | None) -> None:
    assert normalize_bus_id(bus_id) == normalised
