"""What one GPU reported in one sample, and how the backends' records become `GpuSample`s.

Both backends fill the same C record, navarch_nvml_gpu, once per GPU; decoding it is most of what
a sample costs in Python, so the layout is read in one `struct` call and the parts that rarely
change (strings, NVLink states, return codes) are decoded once and looked up after that.
"""

from __future__ import annotations

import ctypes
import struct
import types
from collections.abc import Mapping, Sequence

import attrs

from navarch.telemetry import _nvml_ctypes
from navarch.telemetry.nvml_codes import Return, as_return

_SUCCESS = Return.SUCCESS

# Keys of GpuSample.field_status, one per NVML query, in the order of NAVARCH_NVML_F_*.
FIELDS = (
    "name",
    "uuid",
    "pci_bus_id",
    "memory",
    "utilization",
    "temperature",
    "temperature_slowdown",
    "temperature_shutdown",
    "power_usage",
    "power_limit",
    "ecc_corrected_volatile",
    "ecc_uncorrected_volatile",
    "ecc_corrected_aggregate",
    "ecc_uncorrected_aggregate",
    "retired_pages_sbe",
    "retired_pages_dbe",
    "retired_pages_pending",
    "remapped_rows",
    "nvlink",
    "pcie_replay",
    "clock_event_reasons",
    "recovery_action",
)


# Not slotted: attrs' frozen __init__ fills a __dict__ in half the time it sets 31 slots, and
# building these objects is most of what a sample costs.
@attrs.frozen(slots=False)
class GpuSample:
    """What one GPU reported in one sample.

    A value is None when its query failed; `field_status` holds NVML's code for every query
    (keys in FIELDS), and `status` is GPU_IS_LOST or RESET_REQUIRED when the whole GPU is.
    """

    index: int
    status: Return
    name: str | None
    uuid: str | None
    pci_bus_id: str | None
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    utilization_gpu_pct: int | None
    utilization_memory_pct: int | None
    temperature_c: int | None
    temperature_slowdown_c: int | None
    temperature_shutdown_c: int | None
    power_usage_mw: int | None
    power_limit_mw: int | None
    ecc_corrected_volatile: int | None
    ecc_uncorrected_volatile: int | None
    ecc_corrected_aggregate: int | None
    ecc_uncorrected_aggregate: int | None
    retired_pages_sbe: int | None  # pages retired after multiple single-bit errors
    retired_pages_dbe: int | None  # pages retired after a double-bit error
    retired_pages_pending: bool | None  # retirement waits for the next reset
    remapped_rows_corrected: int | None
    remapped_rows_uncorrected: int | None
    remapped_rows_pending: bool | None  # a remap waits for the next reset
    remapped_rows_failure: bool | None  # a remap failed: the GPU needs replacing
    pcie_replay_counter: int | None
    clock_event_reasons: int | None  # ClockEventReason bits
    recovery_action: int | None  # a RecoveryAction value; None where the driver lacks it
    # One entry per link NVML knows: True up, False down, None when the link reported an error.
    nvlink_active: tuple[bool | None, ...]
    field_status: Mapping[str, Return]

    def to_json(self) -> dict[str, object]:
        """A JSON-ready mapping: codes as their names."""
        out = attrs.asdict(self, recurse=False)
        out["status"] = self.status.name
        out["nvlink_active"] = list(self.nvlink_active)
        out["field_status"] = {k: v.name for k, v in self.field_status.items()}
        return out


def _record_struct() -> struct.Struct:
    """A struct.Struct that reads navarch_nvml_gpu, laid out from its ctypes copy, in one call.

    Arrays come out as bytes: the strings, and the NVLink states and return codes, which change
    so rarely that their decoded forms are looked up rather than rebuilt every sample.
    """
    codes = {ctypes.c_bool: "?", ctypes.c_int: "i", ctypes.c_uint: "I", ctypes.c_ulonglong: "Q"}
    record = _nvml_ctypes.GpuRecord
    fmt, end = "=", 0
    for name, ctype, *_bits in record._fields_:
        field = getattr(record, name)
        fmt += f"{field.offset - end}x" if field.offset > end else ""
        fmt += f"{field.size}s" if issubclass(ctype, ctypes.Array) else codes[ctype]
        end = field.offset + field.size
    fmt += f"{ctypes.sizeof(record) - end}x" if ctypes.sizeof(record) > end else ""
    return struct.Struct(fmt)


# The numbers of navarch_nvml_gpu, in the order they have there and in GpuSample, each with the
# query (FIELDS key) that reads it.
_VALUES = (
    ("memory_total", "memory"),
    ("memory_used", "memory"),
    ("utilization_gpu", "utilization"),
    ("utilization_memory", "utilization"),
    ("temperature", "temperature"),
    ("temperature_slowdown", "temperature_slowdown"),
    ("temperature_shutdown", "temperature_shutdown"),
    ("power_usage", "power_usage"),
    ("power_limit", "power_limit"),
    ("ecc_corrected_volatile", "ecc_corrected_volatile"),
    ("ecc_uncorrected_volatile", "ecc_uncorrected_volatile"),
    ("ecc_corrected_aggregate", "ecc_corrected_aggregate"),
    ("ecc_uncorrected_aggregate", "ecc_uncorrected_aggregate"),
    ("retired_pages_sbe", "retired_pages_sbe"),
    ("retired_pages_dbe", "retired_pages_dbe"),
    ("retired_pages_pending", "retired_pages_pending"),
    ("remapped_rows_corrected", "remapped_rows"),
    ("remapped_rows_uncorrected", "remapped_rows"),
    ("remapped_rows_pending", "remapped_rows"),
    ("remapped_rows_failure", "remapped_rows"),
    ("pcie_replay_counter", "pcie_replay"),
    ("clock_event_reasons", "clock_event_reasons"),
    ("recovery_action", "recovery_action"),
)
_RECORD = _record_struct()
_RC_FORMAT = struct.Struct(f"={len(FIELDS)}i")
_FIRST_VALUE = [f[0] for f in _nvml_ctypes.GpuRecord._fields_].index(_VALUES[0][0])
_END_VALUES = _FIRST_VALUE + len(_VALUES)
_VALUE_FIELDS = tuple(FIELDS.index(query) for _, query in _VALUES)
_NVLINK = FIELDS.index("nvlink")
_CACHE_LIMIT = 4096


class _RcDecoding:
    """What one combination of return codes means for a sample's values."""

    __slots__ = ("bad_values", "field_status", "name_ok", "nvlink_ok", "pci_ok", "uuid_ok")

    def __init__(self, raw: bytes) -> None:
        codes = _RC_FORMAT.unpack(raw)
        self.field_status = types.MappingProxyType(
            {name: as_return(c) for name, c in zip(FIELDS, codes, strict=True)}
        )
        self.bad_values = tuple(i for i, f in enumerate(_VALUE_FIELDS) if codes[f] != 0)
        self.name_ok, self.uuid_ok, self.pci_ok = (codes[i] == 0 for i in range(3))
        self.nvlink_ok = codes[_NVLINK] == 0


class Decoder:
    """Turns the bytes of navarch_nvml_gpu records into GpuSamples; not thread-safe."""

    def __init__(self) -> None:
        self._rcs: dict[bytes, _RcDecoding] = {}
        self._texts: dict[bytes, str] = {}
        self._links: dict[bytes, tuple[bool | None, ...]] = {}

    def samples(self, data: bytes, count: int) -> list[GpuSample]:
        # The hot path of every sample: cache lookups are inlined, misses go to the methods.
        out = []
        size = _RECORD.size
        rcs, texts, links = self._rcs.get, self._texts.get, self._links.get
        for offset in range(0, count * size, size):
            t = _RECORD.unpack_from(data, offset)
            rc = rcs(t[-1]) or self._rc(t[-1])
            values: Sequence[object] = t[_FIRST_VALUE:_END_VALUES]
            if rc.bad_values:
                blanked = list(values)
                for i in rc.bad_values:
                    blanked[i] = None
                values = blanked
            nvlink = t[-2][: t[-3]]
            # One star argument, the same call to Python: mypy cannot count the fields that
            # `values` fills, so a star in the middle of the arguments reads as too many.
            out.append(
                GpuSample(
                    *(
                        t[0],
                        _SUCCESS if t[1] == 0 else as_return(t[1]),
                        (texts(t[2]) or self._text(t[2])) if rc.name_ok else None,
                        (texts(t[3]) or self._text(t[3])) if rc.uuid_ok else None,
                        (texts(t[4]) or self._text(t[4])) if rc.pci_ok else None,
                        *values,
                        (links(nvlink) or self._nvlink(nvlink)) if rc.nvlink_ok else (),
                        rc.field_status,
                    )
                )
            )
        return out

    def _rc(self, raw: bytes) -> _RcDecoding:
        decoded = self._rcs.get(raw)
        if decoded is None:
            if len(self._rcs) >= _CACHE_LIMIT:
                self._rcs.clear()
            decoded = self._rcs[raw] = _RcDecoding(raw)
        return decoded

    def _text(self, raw: bytes) -> str:
        text = self._texts.get(raw)
        if text is None:
            if len(self._texts) >= _CACHE_LIMIT:
                self._texts.clear()
            text = self._texts[raw] = raw.split(b"\0", 1)[0].decode(errors="replace")
        return text

    def _nvlink(self, raw: bytes) -> tuple[bool | None, ...]:
        links = self._links.get(raw)
        if links is None:
            if len(self._links) >= _CACHE_LIMIT:
                self._links.clear()
            states = struct.unpack(f"{len(raw)}b", raw)
            links = self._links[raw] = tuple(None if s < 0 else s == 1 for s in states)
        return links
