"""The `xid` health check: XIDs as they happen, from NVML's events and from the kernel log.

An XID that both sources saw is reported once, as the kernel log wrote it: the kernel log's record
carries the process and, for XID 154, the recovery action the driver asks for.
"""

from __future__ import annotations

import collections
import logging
import math
import os
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from attrs import field, frozen

from navarch.plugins import (
    GpuBackend,
    GpuEvent,
    GpuInfo,
    HealthEvent,
    HealthEventType,
    NavarchError,
    NodeWatch,
    validators,
)
from navarch.plugins.builtin.health_checks.kmsg_failure import kmsg_failure

if TYPE_CHECKING:
    from navarch.plugins.telemetry import XidEvent

log = logging.getLogger("navarch.daemon")

T = HealthEventType
# The file in the daemon's state directory that holds the last kernel-log record handled.
KMSG_POSITION_FILE = "kmsg-position.json"
# How long to wait before reading the kernel log again after it failed.
KMSG_RETRY = 60.0


@frozen(kw_only=True)
class XidCheckSettings:
    # Read the kernel log for XIDs. Unset: only on the machine's own GPUs (NVML), never for
    # simulated GPUs.
    kmsg: bool | None = None
    # /dev/kmsg, or a file or pipe of kmsg records.
    kmsg_path: str = "/dev/kmsg"
    # An XID that NVML and the kernel log both report within this time counts once.
    merge_window: timedelta = field(default=timedelta(seconds=2), validator=validators.positive)
    # Also parse XIDs that userspace wrote to the kernel log; for tests only, since any process
    # can write a look-alike line.
    trust_user_facility: bool = False


class XidCheck:
    """Streams XIDs, lost GPUs and uncorrectable ECC errors to the control plane as they happen.

    NVML's events arrive through the GPU backend; with the kernel log in use, an NVML XID waits
    up to `merge_window` for the kernel log's record of the same XID on the same GPU, which
    carries the process id and name and XID 154's recovery action, and only that record is sent.
    """

    Settings = XidCheckSettings

    def __init__(self, settings: XidCheckSettings) -> None:
        self.settings = settings

    async def watch(self, node: NodeWatch) -> None:
        import trio

        merger = _Merger(node, self.settings.merge_window.total_seconds())
        async with trio.open_nursery() as nursery:
            if self._reads_kmsg(node.gpus):
                merger.kmsg_active = True
                nursery.start_soon(self._kmsg_loop, node, merger)
            nursery.start_soon(merger.flush_loop)
            await node.gpus.watch_events(merger.gpu_events)

    def _reads_kmsg(self, gpus: GpuBackend) -> bool:
        if self.settings.kmsg is not None:
            return self.settings.kmsg
        return bool(gpus.hardware)

    async def _kmsg_loop(self, node: NodeWatch, merger: _Merger) -> None:
        import trio

        reported = ""
        while True:
            try:
                await self._read_kmsg(node, merger)
                merger.kmsg_active = False  # a file or pipe ended: NVML events wait no more
                return
            except (OSError, NavarchError) as exc:
                merger.kmsg_active = False
                # Once per kind of failure: retries that fail the same way tell nobody more.
                if str(exc) == reported:
                    await trio.sleep(KMSG_RETRY)
                    continue
                reported = str(exc)
                log.warning("reading %s failed: %s", self.settings.kmsg_path, exc)
                node.report([kmsg_failure(node, "xid", self.settings.kmsg_path, exc)])
            await trio.sleep(KMSG_RETRY)

    async def _read_kmsg(self, node: NodeWatch, merger: _Merger) -> None:
        import trio

        from navarch.plugins.telemetry import KmsgReader, ResumePosition

        saved = os.path.join(node.state_dir, KMSG_POSITION_FILE) if node.state_dir else ""
        resume = None
        if saved:
            try:
                resume = await trio.to_thread.run_sync(ResumePosition.load, saved)
            except Exception as exc:  # a damaged file costs the backlog, not the watcher
                log.warning("ignoring the saved kernel-log position: %s", exc)
        with KmsgReader(
            self.settings.kmsg_path,
            resume=resume,
            trust_user_facility=self.settings.trust_user_facility,
        ) as reader:
            merger.kmsg_active = True
            try:
                async for xid in reader.xid_events():
                    merger.kmsg_xid(xid)
                    if saved and reader.position is not None:
                        await trio.to_thread.run_sync(reader.position.save, saved)
            finally:
                # Records passed over since the last XID need not be read again after a restart.
                if saved and reader.position is not None and reader.position != resume:
                    reader.position.save(saved)


class _Merger:
    """Turns XIDs from NVML and the kernel log into events, reporting each XID once.

    Pairing is by count: each kernel-log record cancels one NVML XID with the same GPU and code
    within the window, whichever came first, so repeated XIDs from different processes are all
    reported.
    """

    def __init__(self, node: NodeWatch, window: float) -> None:
        import trio

        from navarch.plugins.telemetry import normalize_bus_id

        self.node = node
        self.window = window
        self._kmsg_active = False
        self._infos: dict[int, GpuInfo] = {g.index: g for g in node.inventory}
        self._by_pci: dict[str, GpuInfo] = {}
        for g in node.inventory:
            bus = normalize_bus_id(g.pci_bus_id) if g.pci_bus_id else None
            if bus:
                self._by_pci[bus] = g
        # (gpu index, xid) -> NVML events waiting for the kernel log, with their deadlines
        self._held: dict[tuple[int, int], collections.deque[tuple[float, HealthEvent]]] = (
            collections.defaultdict(collections.deque)
        )
        # (gpu index, xid) -> until when each kernel-log record may still cancel an NVML event
        self._credits: dict[tuple[int, int], collections.deque[float]] = collections.defaultdict(
            collections.deque
        )
        self._changed = trio.Event()

    @property
    def kmsg_active(self) -> bool:
        return self._kmsg_active

    @kmsg_active.setter
    def kmsg_active(self, active: bool) -> None:
        self._kmsg_active = active
        if not active:
            self._changed.set()  # NVML events held for the kernel log go out now

    def gpu_events(self, events: Sequence[GpuEvent]) -> None:
        import trio

        now = trio.current_time()
        out: list[HealthEvent] = []
        for e in events:
            info = self._infos.get(e.gpu_index)
            details = dict(e.details)
            if info is not None and info.pci_bus_id:
                details.setdefault("pci_bus_id", info.pci_bus_id)
            event = HealthEvent(
                type=e.type,
                time=self.node.wall_clock(),
                gpu_index=e.gpu_index,
                gpu_uuid=info.uuid if info else "",
                xid=e.xid,
                message=e.message or (f"XID {e.xid}" if e.xid else ""),
                details={"source": "nvml", **details},
            )
            if not e.xid:
                out.append(event)
                continue
            key = (e.gpu_index, e.xid)
            credits = self._credits.get(key)
            while credits and credits[0] < now:
                credits.popleft()
            if credits:
                credits.popleft()  # the kernel log already reported this XID
            elif self.kmsg_active:
                self._held[key].append((now + self.window, event))
                self._changed.set()
            else:
                out.append(event)
        self._send(out)

    def kmsg_xid(self, xid: XidEvent) -> None:
        import trio

        from navarch.plugins.telemetry import RecoveryAction

        now = trio.current_time()
        info = self._by_pci.get(xid.pci_bus_id)
        index = info.index if info else -1
        details = {"pci_bus_id": xid.pci_bus_id, "source": "kmsg"}
        if xid.pid >= 0:
            details["pid"] = str(xid.pid)
        if xid.process_name:
            details["process_name"] = xid.process_name
        if xid.recovery_action is not None:
            try:
                details["recovery_action"] = RecoveryAction(xid.recovery_action.new).name
            except ValueError:
                details["recovery_action"] = str(xid.recovery_action.new)
        if xid.nvlink5 is not None:
            details["nvlink_link"] = str(xid.nvlink5.link)
            details["nvlink_fatal"] = "true" if xid.nvlink5.fatal else "false"
        if xid.seq is not None:
            details["kmsg_seq"] = str(xid.seq)
        key = (index, xid.code)
        held = self._held.get(key)
        if held:
            held.popleft()  # NVML's event of the same XID is superseded by this record
        else:
            self._credits[key].append(now + self.window)
        self._send(
            [
                HealthEvent(
                    type=T.XID,
                    time=self.node.wall_clock(),
                    gpu_index=index,
                    gpu_uuid=info.uuid if info else "",
                    xid=xid.code,
                    message=xid.message,
                    details=details,
                )
            ]
        )

    async def flush_loop(self) -> None:
        """Sends NVML XIDs whose window passed without a kernel-log record."""
        import trio

        while True:
            deadlines = [q[0][0] for q in self._held.values() if q]
            with trio.move_on_at(min(deadlines, default=math.inf)):
                await self._changed.wait()
            self._changed = trio.Event()
            now = trio.current_time()
            out: list[HealthEvent] = []
            for key, queue in list(self._held.items()):
                while queue and (queue[0][0] <= now or not self.kmsg_active):
                    out.append(queue.popleft()[1])
                if not queue:
                    del self._held[key]
            for key, credits in list(self._credits.items()):
                while credits and credits[0] <= now:
                    credits.popleft()
                if not credits:
                    del self._credits[key]
            self._send(out)

    def _send(self, events: list[HealthEvent]) -> None:
        if events:
            self.node.report(events)
