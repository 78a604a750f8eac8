"""The PagerDuty notifier: turns events into alerts through the PagerDuty Events API v2.

One remediation episode is one incident. Every event of an episode carries its id (the detail
`episode`), and the notifier sends them all under the dedup key `navarch-episode-<id>`: the
first event that passes the routing triggers the alert, the episode's later steps trigger it
again under the same key (PagerDuty adds them to the open alert rather than opening another),
and the episode's end resolves it: `remediation.completed` or `remediation.cancelled`. A held
episode (`remediation.held`) waits for an operator, so it triggers at critical severity and
keeps the incident open until the operator cancels the episode. An opened circuit breaker is one
incident per pool, `navarch-remediation.breaker_opened-pool-<pool>`, resolved by the breaker's
reset. Any other event is its own alert, keyed `navarch-<kind>-<node>` (or `-pool-<pool>`), so a
repeat of it joins the open alert; PagerDuty's own key is used for an event with neither.

The routing (`kinds`, `min_severity`) decides which events open an incident; the events that
continue or end an open incident are sent whatever it says, so that an incident never stays open
because its resolution is `info`. After a restart, when the notifier no longer knows which
incidents it opened, an end is sent whenever its kind passes `kinds` (resolving a key PagerDuty
does not know does nothing).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from navarch.plugins import (
    Event,
    NotifierSettings,
    Register,
    event_document,
    hookimpl,
    kinds_setting,
    min_severity_setting,
    severity_of,
    validators,
)
from navarch.plugins.builtin.messages import about, links, summary
from navarch.plugins.builtin.secret_env import env_name, read_secret

if TYPE_CHECKING:
    from navarch.plugins.builtin.delivery import Delivery

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

# The kinds that end an episode's incident; other remediation kinds of an episode trigger it.
EPISODE_ENDS = frozenset({"remediation.completed", "remediation.cancelled"})
# A kind that resolves the incident another kind opened, for the same node or pool.
RESOLVES = {"remediation.breaker_reset": "remediation.breaker_opened"}
# PagerDuty's limits on a summary and a dedup key.
_SUMMARY_CHARS = 1024
_KEY_CHARS = 255


@frozen(kw_only=True)
class PagerDutySettings(NotifierSettings):
    # The environment variable that holds the integration's routing key.
    routing_key_env: str = field(validator=env_name)
    events_url: str = field(default=EVENTS_URL, validator=validators.url)
    # The dashboard's address ([server] external_url); empty sends no links.
    dashboard_url: str = field(default="", validator=validators.optional_url)
    kinds: tuple[str, ...] = kinds_setting(("remediation.*",))
    min_severity: str = min_severity_setting("warning")
    # The longest one post may take.
    timeout: timedelta = field(default=timedelta(seconds=10), validator=validators.positive)
    # Retries after a failed post; the delay doubles from `backoff` each time.
    retries: int = field(default=5, validator=validators.at_least(0))
    backoff: timedelta = field(default=timedelta(seconds=1), validator=validators.positive)
    queue_size: int = field(default=1000, validator=validators.at_least(1))


def dedup_key(event: Event) -> str:
    """The alert an event belongs to; empty for none (PagerDuty makes one)."""
    episode = event.details.get("episode", "")
    if event.kind.startswith("remediation.") and episode:
        return _bounded(f"navarch-episode-{episode}")
    kind = RESOLVES.get(event.kind, event.kind)
    if event.node_id:
        return _bounded(f"navarch-{kind}-{event.node_id}")
    pool = event.details.get("pool", "")
    if pool:
        return _bounded(f"navarch-{kind}-pool-{pool}")
    return ""


def _bounded(key: str) -> str:
    return key[:_KEY_CHARS]


def _ends(event: Event) -> bool:
    if event.kind in RESOLVES:
        return True
    return event.kind in EPISODE_ENDS and bool(event.details.get("episode"))


def _opens(event: Event) -> bool:
    """Whether the alert the event triggers has an end the notifier waits for."""
    episode = bool(event.details.get("episode")) and event.kind.startswith("remediation.")
    return episode or event.kind in RESOLVES.values()


class PagerDutyNotifier:
    Settings = PagerDutySettings

    def __init__(self, settings: PagerDutySettings, name: str = "pagerduty") -> None:
        self.settings = settings
        self.name = name
        self._routing_key = read_secret(
            name,
            "routing_key_env",
            settings.routing_key_env,
            "the routing key of the PagerDuty service's Events API v2 integration",
        )
        # The dedup keys of the incidents this notifier triggered and has not resolved.
        self.open_incidents: set[str] = set()
        from navarch.plugins.builtin.delivery import Delivery

        self.delivery: Delivery = Delivery(
            name,
            "PagerDuty",
            settings.events_url,
            timeout=settings.timeout.total_seconds(),
            retries=settings.retries,
            backoff=settings.backoff.total_seconds(),
            queue_size=settings.queue_size,
            secrets=(self._routing_key,),
        )

    def notify(self, event: Event) -> None:
        key = dedup_key(event)
        settings = self.settings
        if _ends(event):
            if key in self.open_incidents or settings.admits_kind(event):
                self.open_incidents.discard(key)
                self._send({"event_action": "resolve", "dedup_key": key}, event)
            return
        if not (key in self.open_incidents or settings.admits(event)):
            return
        if _opens(event):
            self.open_incidents.add(key)
        self._send(self.trigger(event, key), event)

    def trigger(self, event: Event, key: str) -> dict[str, Any]:
        """The body of a trigger for `event` under `key` (empty: PagerDuty's own key)."""
        document = event_document(event)
        pool = event.details.get("pool", "")
        payload: dict[str, Any] = {
            "summary": summary(event)[:_SUMMARY_CHARS],
            "source": event.node_id or (f"pool {pool}" if pool else "navarch"),
            "severity": severity_of(event).value,
            "timestamp": document["time"],
            "class": event.kind,
            "custom_details": document,
        }
        if pool:
            payload["group"] = pool
        body: dict[str, Any] = {"event_action": "trigger", "payload": payload, "client": "navarch"}
        if key:
            body["dedup_key"] = key
        if self.settings.dashboard_url:
            body["client_url"] = self.settings.dashboard_url
        pages = links(event, self.settings.dashboard_url)
        if pages:
            body["links"] = [{"href": href, "text": text} for href, text in pages]
        return body

    def _send(self, body: dict[str, Any], event: Event) -> None:
        full = {"routing_key": self._routing_key, **body}
        self.delivery.put(json.dumps(full, ensure_ascii=False).encode(), about(event))

    async def run(self) -> None:
        await self.delivery.run()


@hookimpl
def navarch_notifiers(register: Register) -> None:
    register("pagerduty", PagerDutyNotifier)
