"""The store's own format: domain objects to table rows and back.

Enums are stored by their domain values (`active`, `drain`), timestamps as RFC 3339 text in UTC,
and collections (labels, GPUs, metrics, health events, details) as JSON with the domain's field
names. The format belongs to the store alone: the API's wire format may change without a
migration, and this one changes only with one (`navarch/store/migrations/`).

The writer refuses what would not read back: infinities and NaN (`json.dumps` would write
`Infinity`, which is not JSON), text that is not Unicode scalar values (sqlite3 cannot encode a
lone surrogate), and times before the year 1000. A row that does not read back all the same (a
file from an older navarch, or one changed by hand) is reported as a `StoreError` that names the
database and the row, rather than being guessed at.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import cattrs

from navarch.clock import format_timestamp
from navarch.model import (
    Bootstrap,
    Command,
    CommandStatus,
    CommandType,
    Event,
    GpuInfo,
    HealthEvent,
    HealthStatus,
    InstanceRecord,
    InstanceStatus,
    Node,
    NodeMetrics,
    NodeStatus,
    Preflight,
    Remediation,
    RemediationAction,
    RemediationStep,
)
from navarch.store.protocol import DecisionState, RemediationSwitch, StoreError

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)

# A value as the store writes it into a column.
SqlValue = str | int | float | None
# A row as sqlite3 reads it back: untyped, each column's type is the schema's.
Row = Sequence[Any]

_converter = cattrs.Converter()
_converter.register_unstructure_hook(datetime, format_timestamp)


def _parse_time(value: object, _type: type) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected a timestamp, got {value!r}")
    return datetime.fromisoformat(value).astimezone(UTC)


_converter.register_structure_hook(datetime, _parse_time)
_converter.register_unstructure_hook_factory(
    attrs.has,
    lambda cls: cattrs.gen.make_dict_unstructure_fn(cls, _converter, _cattrs_omit_if_default=True),
)


def to_json(value: object) -> str:
    """A domain value as the store's JSON text; ValueError for a number JSON has no form for.

    Text is kept as it is rather than escaped, so that a lone surrogate fails when it is written
    instead of when it is read back.
    """
    return json.dumps(
        _converter.unstructure(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


# RFC 3339 years have four digits, and `format_timestamp` does not pad earlier ones.
_EARLIEST_YEAR = 1000


def time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.astimezone(UTC).year < _EARLIEST_YEAR:
        raise ValueError(f"{value.isoformat()}: the store keeps times from the year 1000 on")
    return format_timestamp(value)


def node_row(node: Node) -> tuple[SqlValue, ...]:
    return (
        node.node_id,
        node.status.value,
        node.health.value,
        node.status_reason,
        node.provider,
        node.region,
        node.zone,
        node.instance_type,
        node.pool,
        node.hostname,
        to_json(node.labels),
        to_json(node.gpus),
        time(node.registered_at),
        time(node.last_heartbeat_at),
        None if node.metrics is None else to_json(node.metrics),
        to_json(node.last_health_events),
    )


def command_row(command: Command) -> tuple[SqlValue, ...]:
    return (
        command.command_id,
        command.node_id,
        command.type.value,
        command.status.value,
        command.reason,
        to_json(command.parameters),
        time(command.issued_at),
        command.issued_by,
        time(command.completed_at),
        command.result_message,
    )


def instance_row(record: InstanceRecord) -> tuple[SqlValue, ...]:
    return (
        record.instance_id,
        record.provider,
        record.pool,
        record.region,
        record.zone,
        record.instance_type,
        record.status.value,
        record.reason,
        record.node_id,
        time(record.created_at),
        time(record.updated_at),
        record.address,
        "" if record.bootstrap is None else to_json(record.bootstrap),
        "" if record.preflight is None else to_json(record.preflight),
    )


def event_row(event: Event) -> tuple[SqlValue, ...]:
    return (
        event.event_id,
        time(event.time),
        event.kind,
        event.node_id,
        event.actor,
        event.reason,
        None if event.from_status is None else event.from_status.value,
        None if event.to_status is None else event.to_status.value,
        to_json(event.details),
    )


# A held episode stays open: it ends only when an operator cancels it.
_CLOSED_STEPS = (RemediationStep.DONE, RemediationStep.CANCELLED)


def remediation_row(episode: Remediation) -> tuple[SqlValue, ...]:
    return (
        episode.episode_id,
        episode.node_id,
        episode.pool,
        episode.step.value,
        episode.rule,
        episode.detail,
        time(episode.started_at),
        time(episode.updated_at),
        episode.action.value,
        episode.gpu_index,
        int(episode.step not in _CLOSED_STEPS),
    )


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number the store keeps")


def _check_text(value: object) -> None:
    """Raises UnicodeEncodeError for a lone surrogate anywhere in a parsed JSON value.

    Older versions escaped them (`"\\ud800"`), so such JSON parses, and only fails when shown.
    """
    if isinstance(value, str):
        value.encode()
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode()
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


class RowReader:
    """Turns rows back into domain objects; a row that does not read means a damaged file."""

    def __init__(self, location: str) -> None:
        self._location = location

    def _fail(self, what: str, problem: object) -> StoreError:
        return StoreError(f"{self._location}: unreadable stored value in {what}: {problem}")

    def value(self, text: str, cls: type[T], what: str) -> T:
        try:
            parsed = json.loads(text, parse_constant=_refuse_constant)
            _check_text(parsed)
            return _converter.structure(parsed, cls)
        except Exception as exc:
            raise self._fail(what, exc) from None

    def optional_value(self, text: str | None, cls: type[T], what: str) -> T | None:
        return None if text is None else self.value(text, cls, what)

    def integer(self, value: object, what: str) -> int:
        if type(value) is not int:
            raise self._fail(what, f"{value!r} is not an integer")
        return value

    def enum(self, value: object, cls: type[E], what: str) -> E:
        try:
            return cls(value)
        except ValueError:
            raise self._fail(what, f"{value!r} is not a {cls.__name__}") from None

    def time(self, text: str | None, what: str) -> datetime | None:
        if text is None:
            return None
        try:
            return _parse_time(text, datetime)
        except ValueError as exc:
            raise self._fail(what, exc) from None

    def switch(self, row: Row) -> RemediationSwitch:
        kind, pool, reason, since = row
        return RemediationSwitch(
            kind=kind, pool=pool, reason=reason, since=self.instant(since, "switches")
        )

    def decision(self, row: Row) -> DecisionState:
        scope, key, value, updated_at = row
        return DecisionState(
            scope=scope, key=key, value=value, updated_at=self.instant(updated_at, "decision_state")
        )

    def instant(self, text: str | None, what: str) -> datetime:
        value = self.time(text, what)
        if value is None:
            raise self._fail(what, "no time")
        return value

    def node(self, row: Row) -> Node:
        what = f"node {row[0]!r}"
        return Node(
            node_id=row[0],
            status=self.enum(row[1], NodeStatus, what),
            health=self.enum(row[2], HealthStatus, what),
            status_reason=row[3],
            provider=row[4],
            region=row[5],
            zone=row[6],
            instance_type=row[7],
            pool=row[8],
            hostname=row[9],
            labels=self.value(row[10], dict[str, str], what),
            gpus=self.value(row[11], tuple[GpuInfo, ...], what),
            registered_at=self.time(row[12], what),
            last_heartbeat_at=self.time(row[13], what),
            metrics=self.optional_value(row[14], NodeMetrics, what),
            last_health_events=self.value(row[15], tuple[HealthEvent, ...], what),
        )

    def command(self, row: Row) -> Command:
        what = f"command {row[0]!r}"
        return Command(
            command_id=row[0],
            node_id=row[1],
            type=self.enum(row[2], CommandType, what),
            status=self.enum(row[3], CommandStatus, what),
            reason=row[4],
            parameters=self.value(row[5], dict[str, str], what),
            issued_at=self.time(row[6], what),
            issued_by=row[7],
            completed_at=self.time(row[8], what),
            result_message=row[9],
        )

    def event(self, row: Row) -> Event:
        what = f"event {row[0]!r}"
        return Event(
            event_id=row[0],
            time=self.instant(row[1], what),
            kind=row[2],
            node_id=row[3],
            actor=row[4],
            reason=row[5],
            from_status=None if row[6] is None else self.enum(row[6], NodeStatus, what),
            to_status=None if row[7] is None else self.enum(row[7], NodeStatus, what),
            details=self.value(row[8], dict[str, str], what),
        )

    def remediation(self, row: Row) -> Remediation:
        what = f"remediation episode {row[0]!r}"
        return Remediation(
            episode_id=row[0],
            node_id=row[1],
            pool=row[2],
            step=self.enum(row[3], RemediationStep, what),
            rule=row[4],
            detail=row[5],
            started_at=self.time(row[6], what),
            updated_at=self.time(row[7], what),
            action=self.enum(row[8], RemediationAction, what),
            gpu_index=self.integer(row[9], what),
        )

    def instance(self, row: Row) -> InstanceRecord:
        what = f"instance {row[1]}/{row[0]}"
        return InstanceRecord(
            instance_id=row[0],
            provider=row[1],
            pool=row[2],
            region=row[3],
            zone=row[4],
            instance_type=row[5],
            status=self.enum(row[6], InstanceStatus, what),
            reason=row[7],
            node_id=row[8],
            created_at=self.time(row[9], what),
            updated_at=self.time(row[10], what),
            address=row[11],
            bootstrap=None if not row[12] else self.value(row[12], Bootstrap, what),
            preflight=None if not row[13] else self.value(row[13], Preflight, what),
        )
