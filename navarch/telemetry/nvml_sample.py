"""What one GPU reported in one sample, and how the backends' records become `GpuSample`s.

Both backends fill the same C record, navarch_nvml_gpu, once per GPU; decoding it is most of what
a sample costs in Python, so the layout is read in one `struct` call and the parts that rarely
change (the GPU's identity; its NVLink states and return codes) are decoded once and looked up
after that.
"""

from __future__ import annotations

import ctypes
import struct
import sys
import types
from collections.abc import Mapping, Sequence

import attrs

from navarch.telemetry import _nvml_record
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
    "pcie_link_gen",
    "pcie_link_gen_max",
    "pcie_link_width",
    "pcie_link_width_max",
    "clock_event_reasons",
    "recovery_action",
    "nvlink_replay_errors",
    "nvlink_recovery_errors",
    "nvlink_crc_flit_errors",
    "nvlink_crc_data_errors",
)


# Not slotted: attrs' frozen __init__ fills a __dict__ in half the time it sets 39 slots, and
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
    # The PCIe link now and at its best (the GPU's and its slot's). Idle GPUs drop the
    # generation to save power; a narrower link than the top stays narrow until a reset.
    pcie_link_gen: int | None
    pcie_link_gen_max: int | None
    pcie_link_width: int | None  # lanes
    pcie_link_width_max: int | None
    clock_event_reasons: int | None  # ClockEventReason bits
    recovery_action: int | None  # a RecoveryAction value; None where the driver lacks it
    # NVLink error counters summed over the GPU's links since the driver loaded; None on a GPU
    # without NVLink.
    nvlink_replay_errors: int | None
    nvlink_recovery_errors: int | None
    nvlink_crc_flit_errors: int | None
    nvlink_crc_data_errors: int | None
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


# Fields that lie next to each other in the record and change rarely, each group read as one
# bytes item and decoded once: the GPU's identity, and its NVLink states with the return codes.
_GROUPS = {
    "identity": ("name", "uuid", "pci_bus_id"),
    "state": ("nvlink_count", "nvlink_state", "rc"),
}


def _record_struct() -> tuple[struct.Struct, tuple[str, ...]]:
    """A struct.Struct that reads navarch_nvml_gpu, laid out from its ctypes copy, in one call,
    and the name of each item it returns: a field's, or a group's in _GROUPS."""
    codes = {ctypes.c_bool: "?", ctypes.c_int: "i", ctypes.c_uint: "I", ctypes.c_ulonglong: "Q"}
    record = _nvml_record.GpuRecord
    starts = {names[0]: group for group, names in _GROUPS.items()}
    inside = {name for names in _GROUPS.values() for name in names[1:]}
    fmt, end, items = "=", 0, []
    for name, ctype, *_bits in record._fields_:
        field = getattr(record, name)
        if name in inside:
            assert field.offset == end, f"padding before {name} would split its group"
            end = field.offset + field.size
            continue
        fmt += f"{field.offset - end}x" if field.offset > end else ""
        if name in starts:
            last = getattr(record, _GROUPS[starts[name]][-1])
            fmt += f"{last.offset + last.size - field.offset}s"
            items.append(starts[name])
        else:
            fmt += codes[ctype]
            items.append(name)
        end = field.offset + field.size
    fmt += f"{ctypes.sizeof(record) - end}x" if ctypes.sizeof(record) > end else ""
    return struct.Struct(fmt), tuple(items)


def _part(group: str, name: str) -> slice:
    """Where field `name` lies in the bytes of its group."""
    record = _nvml_record.GpuRecord
    base = getattr(record, _GROUPS[group][0]).offset
    field = getattr(record, name)
    return slice(field.offset - base, field.offset - base + field.size)


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
    ("pcie_link_gen", "pcie_link_gen"),
    ("pcie_link_gen_max", "pcie_link_gen_max"),
    ("pcie_link_width", "pcie_link_width"),
    ("pcie_link_width_max", "pcie_link_width_max"),
    ("clock_event_reasons", "clock_event_reasons"),
    ("recovery_action", "recovery_action"),
    ("nvlink_replay_errors", "nvlink_replay_errors"),
    ("nvlink_recovery_errors", "nvlink_recovery_errors"),
    ("nvlink_crc_flit_errors", "nvlink_crc_flit_errors"),
    ("nvlink_crc_data_errors", "nvlink_crc_data_errors"),
)
_RECORD, _ITEMS = _record_struct()
_FIRST_VALUE = _ITEMS.index(_VALUES[0][0])
_END_VALUES = _FIRST_VALUE + len(_VALUES)
_VALUE_FIELDS = tuple(FIELDS.index(query) for _, query in _VALUES)
_IDENTITY_PARTS = tuple(_part("identity", name) for name in _GROUPS["identity"])
_IDENTITY_FIELDS = tuple(FIELDS.index(name) for name in _GROUPS["identity"])
_NVLINK_COUNT = _part("state", "nvlink_count")
_NVLINK_STATE = _part("state", "nvlink_state")
_RC = _part("state", "rc")
_RC_FORMAT = struct.Struct(f"={len(FIELDS)}i")
_NVLINK = FIELDS.index("nvlink")
_CACHE_LIMIT = 4096


class _State:
    """What one state group (NVLink states and return codes) means for a sample."""

    __slots__ = ("bad_values", "field_status", "identity_known", "identity_ok", "nvlink")

    def __init__(self, raw: bytes) -> None:
        codes = _RC_FORMAT.unpack(raw[_RC])
        self.field_status = types.MappingProxyType(
            {name: as_return(c) for name, c in zip(FIELDS, codes, strict=True)}
        )
        self.bad_values = tuple(i for i, f in enumerate(_VALUE_FIELDS) if codes[f] != 0)
        self.identity_known = tuple(codes[f] == 0 for f in _IDENTITY_FIELDS)
        self.identity_ok = all(self.identity_known)
        self.nvlink: tuple[bool | None, ...] = ()
        if codes[_NVLINK] == 0:
            count = int.from_bytes(raw[_NVLINK_COUNT], sys.byteorder)
            states = struct.unpack(f"{count}b", raw[_NVLINK_STATE][:count])
            self.nvlink = tuple(None if s < 0 else s == 1 for s in states)

    def identity(self, decoded: Sequence[str | None]) -> tuple[str | None, ...]:
        """The identity strings, None where their query failed."""
        return tuple(v if ok else None for v, ok in zip(decoded, self.identity_known, strict=True))


class Decoder:
    """Turns the bytes of navarch_nvml_gpu records into GpuSamples; not thread-safe."""

    def __init__(self) -> None:
        self._states: dict[bytes, _State] = {}
        self._identities: dict[bytes, tuple[str, ...]] = {}

    def samples(self, data: bytes, count: int) -> list[GpuSample]:
        # The hot path of every sample: cache lookups are inlined, misses go to the methods.
        out = []
        size = _RECORD.size
        states, identities = self._states.get, self._identities.get
        for offset in range(0, count * size, size):
            t = _RECORD.unpack_from(data, offset)
            state = states(t[-1]) or self._state(t[-1])
            identity: Sequence[str | None] = identities(t[2]) or self._identity(t[2])
            if not state.identity_ok:
                identity = state.identity(identity)
            values: Sequence[object] = t[_FIRST_VALUE:_END_VALUES]
            if state.bad_values:
                blanked = list(values)
                for i in state.bad_values:
                    blanked[i] = None
                values = blanked
            # One star argument, the same call to Python: mypy cannot count the fields that
            # `values` fills, so a star in the middle of the arguments reads as too many.
            out.append(
                GpuSample(
                    *(
                        t[0],
                        _SUCCESS if t[1] == 0 else as_return(t[1]),
                        *identity,
                        *values,
                        state.nvlink,
                        state.field_status,
                    )
                )
            )
        return out

    def _state(self, raw: bytes) -> _State:
        state = self._states.get(raw)
        if state is None:
            if len(self._states) >= _CACHE_LIMIT:
                self._states.clear()
            state = self._states[raw] = _State(raw)
        return state

    def _identity(self, raw: bytes) -> tuple[str, ...]:
        identity = self._identities.get(raw)
        if identity is None:
            if len(self._identities) >= _CACHE_LIMIT:
                self._identities.clear()
            identity = self._identities[raw] = tuple(
                raw[part].split(b"\0", 1)[0].decode(errors="replace") for part in _IDENTITY_PARTS
            )
        return identity
