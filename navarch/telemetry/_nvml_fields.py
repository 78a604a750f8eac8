"""read_fields() of csrc/telemetry_nvml.c for the pure-Python backend: the values of a sample
that NVML serves as fields, read in one nvmlDeviceGetFieldValues call per GPU.

The groups, their routes and their fallbacks are the C file's, so both backends return identical
samples; keep the two in step.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from ctypes import c_int, c_void_p

from navarch.telemetry._nvml_abi import (
    FI_DEV_ECC_DBE_AGG_TOTAL,
    FI_DEV_ECC_DBE_VOL_TOTAL,
    FI_DEV_ECC_SBE_AGG_TOTAL,
    FI_DEV_ECC_SBE_VOL_TOTAL,
    FI_DEV_NVLINK_GET_STATE,
    FI_DEV_PCIE_REPLAY_COUNTER,
    FI_DEV_REMAPPED_COR,
    FI_DEV_REMAPPED_FAILURE,
    FI_DEV_REMAPPED_PENDING,
    FI_DEV_REMAPPED_UNC,
    FI_DEV_RETIRED_DBE,
    FI_DEV_RETIRED_PENDING,
    FI_DEV_RETIRED_SBE,
    FUNCTION_NOT_FOUND,
    GPU_IS_LOST,
    NOT_SUPPORTED,
    NVLINK_STATE_ACTIVE,
    NVLINK_STATE_INACTIVE,
    SUCCESS,
    UNKNOWN,
    FieldValue,
)
from navarch.telemetry._nvml_record import (
    F_ECC_CORRECTED_AGGREGATE,
    F_ECC_CORRECTED_VOLATILE,
    F_ECC_UNCORRECTED_AGGREGATE,
    F_ECC_UNCORRECTED_VOLATILE,
    F_NVLINK,
    F_PCIE_REPLAY,
    F_REMAPPED_ROWS,
    F_RETIRED_PAGES_DBE,
    F_RETIRED_PAGES_PENDING,
    F_RETIRED_PAGES_SBE,
    FIELD_VALUES,
    GpuRecord,
)

# The groups of the C file (G_*): the GpuRecord.rc entry each reports under, its field ids and
# the GpuRecord attributes they fill. NVLink's one id is asked once per link, the link its scope.
GROUPS: tuple[tuple[int, tuple[int, ...], tuple[str, ...]], ...] = (
    (F_ECC_CORRECTED_VOLATILE, (FI_DEV_ECC_SBE_VOL_TOTAL,), ("ecc_corrected_volatile",)),
    (F_ECC_UNCORRECTED_VOLATILE, (FI_DEV_ECC_DBE_VOL_TOTAL,), ("ecc_uncorrected_volatile",)),
    (F_ECC_CORRECTED_AGGREGATE, (FI_DEV_ECC_SBE_AGG_TOTAL,), ("ecc_corrected_aggregate",)),
    (F_ECC_UNCORRECTED_AGGREGATE, (FI_DEV_ECC_DBE_AGG_TOTAL,), ("ecc_uncorrected_aggregate",)),
    (F_RETIRED_PAGES_SBE, (FI_DEV_RETIRED_SBE,), ("retired_pages_sbe",)),
    (F_RETIRED_PAGES_DBE, (FI_DEV_RETIRED_DBE,), ("retired_pages_dbe",)),
    (F_RETIRED_PAGES_PENDING, (FI_DEV_RETIRED_PENDING,), ("retired_pages_pending",)),
    (
        F_REMAPPED_ROWS,
        (
            FI_DEV_REMAPPED_COR,
            FI_DEV_REMAPPED_UNC,
            FI_DEV_REMAPPED_PENDING,
            FI_DEV_REMAPPED_FAILURE,
        ),
        (
            "remapped_rows_corrected",
            "remapped_rows_uncorrected",
            "remapped_rows_pending",
            "remapped_rows_failure",
        ),
    ),
    (F_PCIE_REPLAY, (FI_DEV_PCIE_REPLAY_COUNTER,), ("pcie_replay_counter",)),
    (F_NVLINK, (FI_DEV_NVLINK_GET_STATE,), ()),
)
G_NVLINK = len(GROUPS) - 1
GROUP_OF_FIELD = {field: group for group, (field, _, _) in enumerate(GROUPS)}
_BOOLEANS = {"retired_pages_pending", "remapped_rows_pending", "remapped_rows_failure"}


# One value's own call in a sample: its GpuRecord.rc entry, the reader and the reader's arguments.
Step = tuple[int, Callable[..., int], tuple[object, ...]]


class Route:
    """struct route: how one GPU's values of a group are read."""

    __slots__ = ("agreed", "own_call")

    def __init__(self) -> None:
        self.own_call = False
        self.agreed = SUCCESS  # a failure both ways report alike; SUCCESS: none yet


class Routes:
    __slots__ = ("group", "layout", "nvlink_links", "steps")

    def __init__(self) -> None:
        self.group = [Route() for _ in GROUPS]
        self.nvlink_links = 0
        # What the routes make of a sample, kept until they change: the batch's array and
        # group sizes (FieldReader), and the steps left to their own calls (Session).
        self.layout: tuple[ctypes.Array[FieldValue], tuple[int, ...]] | None = None
        self.steps: tuple[Step, ...] | None = None

    def changed(self) -> None:
        self.layout = None
        self.steps = None


def in_batch(routes: Routes | None, group: int) -> bool:
    if routes is None or routes.group[group].own_call:
        return False
    return group != G_NVLINK or routes.nvlink_links > 0


def learn_nvlink(routes: Routes, g: GpuRecord) -> None:
    """learn_nvlink() in the C file: the links the batch asks, from one full per-link read."""
    rc = g.rc[F_NVLINK]
    if rc == SUCCESS and any(s < 0 for s in g.nvlink_state[: g.nvlink_count]):
        rc = NOT_SUPPORTED
    if rc == SUCCESS:
        routes.nvlink_links = g.nvlink_count
    elif rc in (NOT_SUPPORTED, FUNCTION_NOT_FOUND):
        routes.group[G_NVLINK].own_call = True
    routes.changed()


# nvmlFieldValue_t as bytes: fieldId, scopeId, timestamp, latencyUsec, valueType, nvmlReturn,
# and the value's 8 bytes, which valueType says how to read (VALUE_READERS).
_ENTRY = struct.Struct("=IIqqiiQ")
_DOUBLE = struct.Struct("=d")
_U64 = struct.Struct("=Q")
_MASKS = {1: 0xFFFFFFFF, 2: 0xFFFFFFFFFFFFFFFF, 3: 0xFFFFFFFFFFFFFFFF, 4: 0xFFFFFFFFFFFFFFFF}


def _number(value_type: int, raw: int) -> int:
    """field_as_u64() in the C file, from the value's bytes read as one unsigned 64-bit number."""
    mask = _MASKS.get(value_type)
    if mask is not None:
        return raw & mask
    if value_type == 0:
        number = _DOUBLE.unpack(_U64.pack(raw))[0]
        if not number >= 0:  # negative or NaN
            return 0
        return 0xFFFFFFFFFFFFFFFF if number >= 2.0**64 else int(number)
    if value_type == 5:
        return (((raw & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000) & 0xFFFFFFFFFFFFFFFF
    if value_type == 6:
        return raw & 0xFFFF
    return raw


Entry = tuple[int, int, int, int, int, int, int]


def _decode(entries: list[Entry], group: int, g: GpuRecord) -> int:
    """decode_group() in the C file: the group's values into the record, or the first failure."""
    for entry in entries:
        if entry[5] != SUCCESS:
            return entry[5]
    if group == G_NVLINK:
        states = [_number(e[4], e[6]) for e in entries]
        if any(s not in (NVLINK_STATE_ACTIVE, NVLINK_STATE_INACTIVE) for s in states):
            return UNKNOWN
        for link, state in enumerate(states):
            g.nvlink_state[link] = state == NVLINK_STATE_ACTIVE
        g.nvlink_count = len(entries)
        return SUCCESS
    for entry, attribute in zip(entries, GROUPS[group][2], strict=True):
        number = _number(entry[4], entry[6])
        setattr(g, attribute, number != 0 if attribute in _BOOLEANS else number)
    return SUCCESS


class FieldReader:
    """One GPU session's field reads: every GPU's routes and the batch each lays out."""

    def __init__(
        self,
        count: int,
        get_field_values: Callable[..., int] | None,
        read_group: Callable[[c_void_p, GpuRecord, int], int],
    ) -> None:
        self._get = get_field_values
        self._read_group = read_group
        self._routes = [Routes() for _ in range(count)]
        self.batched = True
        self._plain = self._layout(None)

    def routes(self, index: int) -> Routes | None:
        return self._routes[index] if self.batched and self._get is not None else None

    @staticmethod
    def _layout(routes: Routes | None) -> tuple[ctypes.Array[FieldValue], tuple[int, ...]]:
        """build_batch() in the C file. NVML writes all but the ids and scopes, so the array of
        a layout is filled once and reused."""
        sizes = tuple(
            0
            if routes is None or not in_batch(routes, group)
            else routes.nvlink_links
            if group == G_NVLINK
            else len(GROUPS[group][1])
            for group in range(len(GROUPS))
        )
        array = (FieldValue * (len(FIELD_VALUES) + sum(sizes)))()
        ids = [field_id for field_id, _, _ in FIELD_VALUES]
        scopes = [0] * len(ids)
        for group, size in enumerate(sizes):
            ids += [GROUPS[group][1][0 if group == G_NVLINK else i] for i in range(size)]
            scopes += list(range(size)) if group == G_NVLINK else [0] * size
        for value, field_id, scope in zip(array, ids, scopes, strict=True):
            value.fieldId, value.scopeId = field_id, scope
        return array, sizes

    def read(self, d: c_void_p, g: GpuRecord, routes: Routes | None) -> None:
        if routes is None:
            values, sizes = self._plain
        else:
            if routes.layout is None:
                routes.layout = self._layout(routes)
            values, sizes = routes.layout
        if g.status == GPU_IS_LOST:
            rc = GPU_IS_LOST
        elif self._get is None:
            rc = FUNCTION_NOT_FOUND
        else:
            rc = self._get(d, c_int(len(values)), values)
        entries: list[Entry] = list(_ENTRY.iter_unpack(bytes(values))) if rc == SUCCESS else []
        for i, (_, attribute, field) in enumerate(FIELD_VALUES):
            code = entries[i][5] if entries else rc
            if code == SUCCESS:
                setattr(g, attribute, _number(entries[i][4], entries[i][6]))
            g.record(field, code)
        if routes is None:
            return
        first = len(FIELD_VALUES)
        for group, size in enumerate(sizes):
            if size == 0:
                continue
            route = routes.group[group]
            code = _decode(entries[first : first + size], group, g) if entries else rc
            first += size
            if code in (SUCCESS, GPU_IS_LOST) or code == route.agreed:
                self._step(g, GROUPS[group][0], code)
            else:
                self._fall_back(d, g, routes, group, code)

    @staticmethod
    def _step(g: GpuRecord, field: int, code: int) -> None:
        if g.status == GPU_IS_LOST:
            g.rc[field] = GPU_IS_LOST
        else:
            g.record(field, code)

    def _fall_back(self, d: c_void_p, g: GpuRecord, routes: Routes, group: int, code: int) -> None:
        """fall_back() in the C file: the group's own call answers for this sample."""
        route = routes.group[group]
        field = GROUPS[group][0]
        if g.status == GPU_IS_LOST:
            g.rc[field] = GPU_IS_LOST
        else:
            g.record(field, self._read_group(d, g, group))
        own = g.rc[field]
        if group == G_NVLINK:
            route.own_call = own != GPU_IS_LOST
        elif own in (SUCCESS, FUNCTION_NOT_FOUND):
            route.own_call = True
        elif own == code:
            route.agreed = code
        if route.own_call:
            routes.changed()
