"""The `nvswitch` health check: NVSwitch SXids streamed from the kernel log."""

from __future__ import annotations

import json

import pytest
import trio
from support.health_policy import judge_each
from support.kmsg import record

from navarch.clock import utc_now
from navarch.daemon.gpu import NvmlGpus
from navarch.health import Action, Result
from navarch.model import HealthEventType as T
from navarch.plugins import NodeWatch
from navarch.plugins.builtin.health_checks import NvswitchCheck, NvswitchCheckSettings
from navarch.plugins.builtin.health_checks.nvswitch import KMSG_POSITION_FILE, parse_sxid

# Lines as the NVSwitch driver writes them (NVSWITCH_PRINT_SXID: "%05d, " then the severity).
NONFATAL = (
    "nvidia-nvswitch3: SXid (PCI:0000:05:00.0): 12028, Non-fatal, "
    "Link 32 egress non-posted PRIV error (First)"
)
FATAL = "nvidia-nvswitch1: SXid (PCI:0000:06:00.0): 20034, Fatal, Link 48 LTSSM Fault Up"
CORRECTABLE = "nvidia-nvswitch0: SXid (PCI:0000:c3:00.0): 20009, Correctable, Link 28 RX Short"
DATA = [
    "nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 20034, Severity 1 Engine instance 60 "
    "Sub-engine instance 00",
    "nvidia-nvswitch3: SXid (PCI:0000:08:00.0): 22013, Data {0x0000003c, 0x0000003c, 0x00000000}",
]


def test_sxid_lines_are_parsed_with_their_severity_and_link():
    sxid = parse_sxid(NONFATAL)
    assert sxid is not None
    assert (sxid.switch, sxid.pci_bus_id, sxid.code) == ("nvswitch3", "0000:05:00.0", 12028)
    assert (sxid.severity, sxid.link) == ("non-fatal", 32)
    fatal = parse_sxid("[6781753.400584] " + FATAL)
    assert fatal is not None and (fatal.severity, fatal.link) == ("fatal", 48)
    correctable = parse_sxid(CORRECTABLE)
    assert correctable is not None and correctable.severity == "correctable"
    device_wide = parse_sxid(
        "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 10003, Fatal, PRI error, instance=2, chiplet=1"
    )
    assert device_wide is not None and (device_wide.severity, device_wide.link) == ("fatal", None)


@pytest.mark.parametrize(
    "line",
    [
        *DATA,
        "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.",
        "nvidia-nvswitch0: SXid (PCI:garbled): 1, Fatal",
        "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): , Fatal, Link 1",
        "",
    ],
)
def test_data_lines_and_other_lines_are_not_sxids(line):
    assert parse_sxid(line) is None


def test_a_severity_navarch_does_not_know_is_unknown():
    sxid = parse_sxid("nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 11004, Degraded, Link 3")
    assert sxid is not None and sxid.severity == "unknown"


class Watch:
    def __init__(self, gpus, state_dir: str = "") -> None:
        self.events = []
        self.node = NodeWatch(
            gpus=gpus,
            inventory=tuple(gpus.inventory()),
            state_dir=state_dir,
            report=self.events.extend,
            wall_clock=utc_now,
        )


@pytest.fixture
def gpus(open_fake):
    return NvmlGpus(open_fake())


async def test_sxids_in_the_kernel_log_are_events(tmp_path, gpus):
    log = tmp_path / "kmsg"
    log.write_bytes(
        record(1, "some other message")
        + record(2, NONFATAL)
        + record(3, DATA[0])
        + record(4, FATAL)
        + record(5, FATAL.replace("nvswitch1", "nvswitch9"), facility=1)  # written by userspace
    )
    watch = Watch(gpus, str(tmp_path))
    await NvswitchCheck(NvswitchCheckSettings(kmsg=True, kmsg_path=str(log))).watch(watch.node)
    nonfatal, fatal = watch.events
    assert nonfatal.type is T.NVSWITCH
    assert nonfatal.gpu_index == -1
    assert nonfatal.details == {
        "switch": "nvswitch3",
        "pci_bus_id": "0000:05:00.0",
        "sxid": "12028",
        "severity": "non-fatal",
        "link": "32",
        "source": "kmsg",
        "kmsg_seq": "2",
    }
    assert nonfatal.metrics == {"sxid": 12028.0}
    assert fatal.details["severity"] == "fatal"
    assert json.loads((tmp_path / KMSG_POSITION_FILE).read_text())["seq"] == 5

    # A restarted daemon reports nothing twice.
    again = Watch(gpus, str(tmp_path))
    await NvswitchCheck(NvswitchCheckSettings(kmsg=True, kmsg_path=str(log))).watch(again.node)
    assert again.events == []


async def test_userspace_lines_count_only_when_trusted(tmp_path, gpus):
    log = tmp_path / "kmsg"
    log.write_bytes(record(1, FATAL, facility=1))
    watch = Watch(gpus)
    settings = NvswitchCheckSettings(kmsg=True, kmsg_path=str(log), trust_user_facility=True)
    await NvswitchCheck(settings).watch(watch.node)
    assert [e.details["sxid"] for e in watch.events] == ["20034"]


async def test_an_unreadable_kernel_log_is_reported_once_and_retried(
    tmp_path, gpus, autojump_clock
):
    watch = Watch(gpus)
    check = NvswitchCheck(NvswitchCheckSettings(kmsg=True, kmsg_path=str(tmp_path / "none")))
    with trio.move_on_after(600):
        await check.watch(watch.node)
    [failed] = watch.events
    assert failed.type is T.CHECK_FAILED
    assert failed.details == {"check": "nvswitch", "source": "kmsg"}


async def test_without_nvswitches_the_check_reads_nothing(tmp_path, gpus, monkeypatch):
    import navarch.plugins.builtin.health_checks.nvswitch as nvswitch

    monkeypatch.setattr(nvswitch, "has_nvswitches", lambda pattern="": False)
    watch = Watch(gpus)
    check = NvswitchCheck(NvswitchCheckSettings(kmsg_path=str(tmp_path / "none")))
    await check.watch(watch.node)  # returns at once: no kernel log to read
    assert watch.events == []


async def test_the_default_policy_judges_sxids_by_severity(tmp_path, gpus):
    log = tmp_path / "kmsg"
    unknown = "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 11004, Degraded, Link 3"
    log.write_bytes(
        record(1, FATAL) + record(2, NONFATAL) + record(3, CORRECTABLE) + record(4, unknown)
    )
    watch = Watch(gpus)
    await NvswitchCheck(NvswitchCheckSettings(kmsg=True, kmsg_path=str(log))).watch(watch.node)
    judged = [(m.result, m.action, m.rule) for m in judge_each(watch.events)]
    assert judged == [
        (Result.UNHEALTHY, Action.REBOOT, "nvswitch-fatal"),
        (Result.DEGRADED, Action.ALERT, "nvswitch-nonfatal"),
        (Result.HEALTHY, Action.NONE, "nvswitch-correctable"),
        (Result.DEGRADED, Action.ALERT, "nvswitch-nonfatal"),
    ]
