"""Watching for the cloud's notice that it will take this machine back, and passing it on.

A spot or preemptible machine is warned before the cloud takes it: AWS gives about two minutes
(the instance metadata service's `spot/instance-action`), GCP about thirty seconds (`preempted`)
and notice of a host event that stops GPU machines (`maintenance-event`). The daemon polls its
cloud's metadata service (`[daemon] metadata = "aws" | "gcp"`; "none", the default, watches
nothing) and reports a notice to the control plane with ReportPreemption, which drains the node
at once and asks its pool for the successor. The notice is reported once, retried until the
control plane has it.

Replies of the metadata service are checked like any input from outside: an odd reply is logged
once and polling goes on. Tests point `metadata_url` at a loopback fake; nothing here ever
guesses a link-local address on its own.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

import trio
from attrs import frozen

from navarch.api import wire as m
from navarch.api.client import ControlPlaneClient, Unreachable
from navarch.api.codec import ApiError
from navarch.daemon.link import Link
from navarch.daemon.nodelog import NodeLog

AWS_METADATA_URL = "http://169.254.169.254"
GCP_METADATA_URL = "http://metadata.google.internal/computeMetadata/v1"
# How long one metadata request may take; the service answers in milliseconds.
REQUEST_TIMEOUT = 2.0


@frozen(kw_only=True)
class Notice:
    """The cloud will take the machine back: `kind` as ReportPreemption takes it."""

    kind: str
    at: datetime | None = None
    detail: str = ""


class MetadataError(Exception):
    """The metadata service could not be read, or said something unexpected."""


class NoticeSource(Protocol):
    async def check(self) -> Notice | None:
        """One look for a notice; raises MetadataError when the service cannot be read."""
        ...


class AwsMetadata:
    """EC2's instance metadata service, IMDSv2 (a session token, then the spot instance action)."""

    def __init__(self, url: str = "") -> None:
        self.url = (url or AWS_METADATA_URL).rstrip("/")
        self._token = ""

    async def check(self) -> Notice | None:
        import httpx

        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as http:
            try:
                if not self._token:
                    reply = await http.put(
                        f"{self.url}/latest/api/token",
                        headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
                    )
                    _expect(reply.status_code == 200 and reply.text, "api/token", reply)
                    self._token = reply.text.strip()
                reply = await http.get(
                    f"{self.url}/latest/meta-data/spot/instance-action",
                    headers={"X-aws-ec2-metadata-token": self._token},
                )
            except httpx.HTTPError as exc:
                raise MetadataError(f"AWS metadata service: {exc}") from None
        if reply.status_code == 401:  # the session token expired: a new one next time
            self._token = ""
            return None
        if reply.status_code == 404:  # nothing planned
            return None
        _expect(reply.status_code == 200, "spot/instance-action", reply)
        body = _json_object(reply.text, "spot/instance-action")
        action = body.get("action")
        if action not in ("terminate", "stop", "hibernate"):
            raise MetadataError(
                f"AWS metadata service: spot/instance-action: action: expected terminate, stop "
                f"or hibernate, got {str(action)[:40]!r}"
            )
        return Notice(
            kind="spot",
            at=_timestamp(body.get("time"), "spot/instance-action: time"),
            detail=f"spot instance-action {action}",
        )


class GcpMetadata:
    """Compute Engine's metadata server: `preempted`, and `maintenance-event` for host events."""

    def __init__(self, url: str = "") -> None:
        self.url = (url or GCP_METADATA_URL).rstrip("/")

    async def check(self) -> Notice | None:
        import httpx

        headers = {"Metadata-Flavor": "Google"}
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, headers=headers) as http:
            try:
                preempted = await http.get(f"{self.url}/instance/preempted")
                maintenance = await http.get(f"{self.url}/instance/maintenance-event")
            except httpx.HTTPError as exc:
                raise MetadataError(f"GCP metadata server: {exc}") from None
        _expect(preempted.status_code == 200, "instance/preempted", preempted)
        _expect(maintenance.status_code == 200, "instance/maintenance-event", maintenance)
        if preempted.text.strip().upper() == "TRUE":
            return Notice(kind="preempted", detail="GCP preempted the instance")
        event = maintenance.text.strip().upper()
        if event.startswith("TERMINATE"):
            return Notice(kind="maintenance", detail=f"GCP maintenance-event {event[:60]}")
        return None


class SimulatedNotices:
    """Notices that the simulator gives a machine (`give`)."""

    def __init__(self) -> None:
        self._notice: Notice | None = None

    def give(self, notice: Notice) -> None:
        self._notice = notice

    async def check(self) -> Notice | None:
        await trio.lowlevel.checkpoint()
        return self._notice


def notice_source(kind: str, url: str = "") -> NoticeSource | None:
    """The source `[daemon] metadata` names; None for "none"."""
    if kind == "aws":
        return AwsMetadata(url)
    if kind == "gcp":
        return GcpMetadata(url)
    return None


class PreemptionWatcher:
    """Polls a notice source and reports the first notice to the control plane."""

    def __init__(
        self,
        client: ControlPlaneClient,
        link: Link,
        source: NoticeSource,
        log: NodeLog,
        interval: float,
    ) -> None:
        self._client = client
        self._link = link
        self._source = source
        self._log = log
        self._interval = interval
        self.reported: Notice | None = None

    async def run(self) -> None:
        """Returns once a notice has been reported (the machine has nothing more to watch)."""
        notice = await self._wait()
        self._log.warning("preemption notice: %s; reporting it", notice.detail or notice.kind)
        backoff = self._link.new_backoff()
        request = m.ReportPreemptionRequest(
            node_id=self._link.node_id, kind=notice.kind, at=notice.at, detail=notice.detail
        )
        while True:
            generation = self._link.generation
            try:
                await self._client.report_preemption(request)
            except (Unreachable, ApiError) as exc:
                await trio.sleep(await self._link.recover(exc, generation, backoff))
                continue
            self._link.ok()
            self.reported = notice
            return

    async def _wait(self) -> Notice:
        failing = ""
        while True:
            try:
                notice = await self._source.check()
            except MetadataError as exc:
                if str(exc) != failing:  # each new way of failing once, not every poll
                    self._log.warning("cannot read preemption notices: %s", exc)
                    failing = str(exc)
                notice = None
            else:
                failing = ""
            if notice is not None:
                return notice
            await trio.sleep(self._interval)


def _expect(ok: object, what: str, reply: Any) -> None:
    if not ok:
        raise MetadataError(f"metadata {what}: unexpected reply {reply.status_code}")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        raise MetadataError(f"metadata {what}: not JSON: {text[:60]!r}") from None
    if not isinstance(body, dict):
        raise MetadataError(f"metadata {what}: expected a JSON object, got {text[:60]!r}")
    return body


def _timestamp(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise MetadataError(f"metadata {what}: not an RFC 3339 time: {str(value)[:40]!r}") from None
    if when.tzinfo is None or not 2000 <= when.year <= 9999:
        raise MetadataError(f"metadata {what}: not an RFC 3339 time: {str(value)[:40]!r}")
    return when
