"""The `nvswitch` health check: NVSwitch errors (SXids) from the kernel log, as they happen.

The NVSwitch driver logs each error as `nvidia-nvswitch3: SXid (PCI:0000:05:00.0): 12028,
Non-fatal, Link 32 egress non-posted PRIV error (First)`. The word after the code is the
severity: Fatal (the switch or its links stop carrying traffic until the GPUs and switches are
reset), Non-fatal or Correctable. The driver follows a headline with lines of the same SXid that
carry only data (`Severity 0 Engine instance 60 ...`, `Data {0x...}`); those are not events.
"""

from __future__ import annotations

import glob
import logging
import os
import re

from attrs import frozen

from navarch.plugins import HealthEvent, HealthEventType, NavarchError, NodeWatch
from navarch.plugins.builtin.health_checks.kmsg_failure import kmsg_failure

log = logging.getLogger("navarch.daemon")

# The device files of the NVSwitch driver: a machine with them has NVSwitches (HGX and DGX
# 8-GPU machines up to Hopper).
NVSWITCH_DEVICES = "/dev/nvidia-nvswitch[0-9]*"
# The file in the daemon's state directory that holds the last kernel-log record handled.
KMSG_POSITION_FILE = "nvswitch-kmsg-position.json"
# How long to wait before reading the kernel log again after it failed.
KMSG_RETRY = 60.0

_SXID = re.compile(
    r"nvidia-(?P<switch>nvswitch\d+):? SXid \(PCI:(?P<pci>[0-9A-Fa-f:.]+)\): "
    r"(?P<code>\d+), (?P<rest>.*)"
)
_SEVERITY = re.compile(r"(Fatal|Non-fatal|Correctable)\b,?\s*")
_CONTINUATION = re.compile(r"(Severity \d|Data \{)")
_LINK = re.compile(r"\bLink (\d+)\b")


def has_nvswitches(pattern: str = NVSWITCH_DEVICES) -> bool:
    """Whether the NVSwitch driver's device files exist."""
    return bool(glob.glob(pattern))


@frozen
class Sxid:
    """One SXid headline from the kernel log."""

    switch: str  # "nvswitch0"
    pci_bus_id: str  # as the line wrote it: 0000:05:00.0
    code: int
    severity: str  # "fatal", "non-fatal", "correctable", or "unknown"
    link: int | None
    text: str  # what follows the code


def parse_sxid(line: str) -> Sxid | None:
    """The SXid in one kernel-log line; None for other lines and for an SXid's data lines."""
    match = _SXID.search(line)
    if match is None:
        return None
    rest = match.group("rest").strip()
    if _CONTINUATION.match(rest):
        return None
    severity = _SEVERITY.match(rest)
    link = _LINK.search(rest)
    return Sxid(
        switch=match.group("switch"),
        pci_bus_id=match.group("pci"),
        code=int(match.group("code")),
        severity=severity.group(1).lower() if severity else "unknown",
        link=int(link.group(1)) if link else None,
        text=rest,
    )


@frozen(kw_only=True)
class NvswitchCheckSettings:
    # Read the kernel log for SXids. Unset: where the machine has NVSwitches (NVSWITCH_DEVICES)
    # and its own GPUs, not simulated ones.
    kmsg: bool | None = None
    # /dev/kmsg, or a file or pipe of kmsg records.
    kmsg_path: str = "/dev/kmsg"
    # Also parse SXids that userspace wrote to the kernel log; for tests only, since any process
    # can write a look-alike line.
    trust_user_facility: bool = False


class NvswitchCheck:
    """Streams SXids from the kernel log to the control plane as they happen.

    With a state directory, the position of the last record handled is saved, so a restarted
    daemon reports the SXids logged while it was down and none twice.
    """

    Settings = NvswitchCheckSettings

    def __init__(self, settings: NvswitchCheckSettings) -> None:
        self.settings = settings

    async def watch(self, node: NodeWatch) -> None:
        import trio

        kmsg = self.settings.kmsg
        if kmsg is None:
            kmsg = bool(node.gpus.hardware) and has_nvswitches()
        if not kmsg:
            return
        reported = ""
        while True:
            try:
                await self._read(node)
                return  # a file or pipe ended
            except (OSError, NavarchError) as exc:
                # Once per kind of failure: retries that fail the same way tell nobody more.
                if str(exc) != reported:
                    reported = str(exc)
                    log.warning("reading %s failed: %s", self.settings.kmsg_path, exc)
                    node.report([kmsg_failure(node, "nvswitch", self.settings.kmsg_path, exc)])
            await trio.sleep(KMSG_RETRY)

    async def _read(self, node: NodeWatch) -> None:
        import trio

        from navarch.plugins.telemetry import KmsgReader, ResumePosition

        saved = os.path.join(node.state_dir, KMSG_POSITION_FILE) if node.state_dir else ""
        resume = None
        if saved:
            try:
                resume = await trio.to_thread.run_sync(ResumePosition.load, saved)
            except Exception as exc:  # a damaged file costs the backlog, not the watcher
                log.warning("ignoring the saved kernel-log position: %s", exc)
        trusted = self.settings.trust_user_facility
        with KmsgReader(self.settings.kmsg_path, resume=resume) as reader:
            try:
                async for record in reader.records():
                    if record.facility != 0 and not trusted:
                        continue
                    sxid = parse_sxid(record.text)
                    if sxid is None:
                        continue
                    node.report([self._event(node, sxid, record.seq)])
                    if saved and reader.position is not None:
                        await trio.to_thread.run_sync(reader.position.save, saved)
            finally:
                # Records passed over since the last SXid need not be read again after a restart.
                if saved and reader.position is not None and reader.position != resume:
                    reader.position.save(saved)

    def _event(self, node: NodeWatch, sxid: Sxid, seq: int) -> HealthEvent:
        details = {
            "switch": sxid.switch,
            "pci_bus_id": sxid.pci_bus_id,
            "sxid": str(sxid.code),
            "severity": sxid.severity,
            "source": "kmsg",
            "kmsg_seq": str(seq),
        }
        if sxid.link is not None:
            details["link"] = str(sxid.link)
        return HealthEvent(
            type=HealthEventType.NVSWITCH,
            time=node.wall_clock(),
            message=f"{sxid.switch} SXid {sxid.code}: {sxid.text}",
            metrics={"sxid": float(sxid.code)},
            details=details,
        )
