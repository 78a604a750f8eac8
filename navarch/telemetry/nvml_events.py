"""NVML events as they happen, for trio code.

NVML offers only a blocking wait for events, which must run in a worker thread, while trio code
must be able to stop waiting at any moment; `EventWatcher` reconciles the two.
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from navarch.telemetry.nvml_codes import EventType, NVMLError, Return

if TYPE_CHECKING:
    from navarch.telemetry.nvml import Nvml


@attrs.frozen
class NvmlEvent:
    """One event from NVML.

    `data` is the XID for XID events and the new RecoveryAction for recovery-action events.
    GPU_UNAVAILABLE also reports a GPU that NVML declared lost while navarch waited.
    """

    type: EventType
    gpu_index: int | None
    uuid: str | None
    data: int
    gpu_instance_id: int | None  # MIG instance ids; None outside MIG
    compute_instance_id: int | None

    @property
    def xid(self) -> int | None:
        return self.data if self.type == EventType.XID else None


_NO_INSTANCE = 0xFFFFFFFF


class EventRecord(Protocol):
    """One event as a backend reports it: navarch_nvml_event, or _nvml_ctypes.EventRecord."""

    @property
    def gpu_index(self) -> int: ...
    @property
    def event_type(self) -> int: ...
    @property
    def event_data(self) -> int: ...
    @property
    def gpu_instance_id(self) -> int: ...
    @property
    def compute_instance_id(self) -> int: ...


class EventSet(Protocol):
    """A backend's NVML event set."""

    def wait(self, timeout_ms: int) -> tuple[int, EventRecord]: ...
    def free(self) -> None: ...


class EventWatcher:
    """NVML events as an async iterator.

    A worker thread waits in nvmlEventSetWait for at most `wait_timeout` seconds at a time.
    Cancelling the iteration returns at once and abandons that thread; what the thread still
    receives is kept for the next iteration, and the event set is freed by whichever of the
    thread and close() finishes last.
    """

    def __init__(self, nvml: Nvml, types: EventType, wait_timeout: float) -> None:
        self._nvml = nvml
        self._types = types
        self._timeout_ms = max(int(wait_timeout * 1000), 1)
        self._event_set: EventSet | None = None
        self._wait_lock = threading.Lock()
        self._ready: collections.deque[tuple[int, EventRecord]] = collections.deque()
        self._closed = False
        self._freed = False
        self._lost: set[int | None] = set()
        self.registered: dict[int, EventType] = {}  # GPU index -> the types NVML accepted

    async def __aenter__(self) -> EventWatcher:
        self.open()
        if not self._nvml._uuids:
            await trio.to_thread.run_sync(self._nvml.sample)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        self._nvml._retain()
        rc, self._event_set, registered = self._nvml._session.events_create(int(self._types))
        if rc != 0:
            self._nvml._release()
            self._freed = self._closed = True
            raise NVMLError(rc, "could not create an NVML event set")
        self.registered = {i: EventType(m) for i, m in enumerate(registered)}

    def close(self) -> None:
        self._closed = True
        if self._wait_lock.acquire(blocking=False):
            try:
                self._free()
            finally:
                self._wait_lock.release()

    def _free(self) -> None:
        if not self._freed and self._event_set is not None:
            self._freed = True
            self._event_set.free()
            self._nvml._release()

    def _wait_once(self) -> None:
        with self._wait_lock:
            try:
                if self._closed or self._ready:
                    return
                if self._event_set is None:
                    raise RuntimeError("the NVML event watcher is not open")
                rc, record = self._event_set.wait(self._timeout_ms)
                if rc != Return.TIMEOUT:
                    self._ready.append((rc, record))
            finally:
                if self._closed:
                    self._free()

    def __aiter__(self) -> EventWatcher:
        return self

    async def __anext__(self) -> NvmlEvent:
        while True:
            if self._ready:
                rc, record = self._ready.popleft()
                event = self._event(rc, record)
                if event is not None:
                    return event
                continue
            if self._closed:
                raise StopAsyncIteration
            await trio.to_thread.run_sync(self._wait_once, abandon_on_cancel=True)

    def _event(self, rc: int, record: EventRecord) -> NvmlEvent | None:
        index = record.gpu_index if record.gpu_index >= 0 else None
        if rc == Return.GPU_IS_LOST:
            # Report a lost GPU once; a driver that keeps answering GPU_IS_LOST must not flood.
            if index in self._lost:
                return None
            self._lost.add(index)
            return NvmlEvent(EventType.GPU_UNAVAILABLE, index, self._uuid(index), 0, None, None)
        if rc != Return.SUCCESS:
            raise NVMLError(rc, "waiting for NVML events failed")
        return NvmlEvent(
            type=EventType(record.event_type),
            gpu_index=index,
            uuid=self._uuid(index),
            data=record.event_data,
            gpu_instance_id=_instance(record.gpu_instance_id),
            compute_instance_id=_instance(record.compute_instance_id),
        )

    def _uuid(self, index: int | None) -> str | None:
        return None if index is None else self._nvml._uuids.get(index)


def _instance(value: int) -> int | None:
    return None if value == _NO_INSTANCE else value
