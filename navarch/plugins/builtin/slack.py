"""The Slack notifier: posts each event it routes to a Slack incoming webhook as a message.

The message is Block Kit: a line with the event's kind and node (a link to the node's
dashboard page when `dashboard_url` is set) and its reason, the event's details as fields, and
a context line with its severity, time and dashboard links. Its `text` is the one-line summary
Slack shows in notifications. The webhook URL is the secret: it comes from the environment
variable `webhook_url_env` names and appears in no log line. Delivery (queue, retries,
Retry-After) is `delivery.Delivery`'s.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from navarch.plugins import (
    Event,
    NavarchError,
    NotifierSettings,
    Register,
    Severity,
    event_document,
    hookimpl,
    kinds_setting,
    min_severity_setting,
    severity_of,
    validators,
)
from navarch.plugins.builtin.messages import about, links, status_change, summary
from navarch.plugins.builtin.secret_env import env_name, read_secret

if TYPE_CHECKING:
    from navarch.plugins.builtin.delivery import Delivery

_ICONS = {
    Severity.INFO: ":large_blue_circle:",
    Severity.WARNING: ":large_orange_circle:",
    Severity.CRITICAL: ":red_circle:",
}
# Slack's limits: a section's text, a field's text, the fields of one section.
_SECTION_CHARS = 3000
_FIELD_CHARS = 2000
_FIELDS = 10


@frozen(kw_only=True)
class SlackSettings(NotifierSettings):
    # The environment variable that holds the incoming webhook's URL.
    webhook_url_env: str = field(validator=env_name)
    # The dashboard's address ([server] external_url); empty sends no links.
    dashboard_url: str = field(default="", validator=validators.optional_url)
    kinds: tuple[str, ...] = kinds_setting()
    min_severity: str = min_severity_setting("warning")
    # The longest one post may take.
    timeout: timedelta = field(default=timedelta(seconds=10), validator=validators.positive)
    # Retries after a failed post; the delay doubles from `backoff` each time.
    retries: int = field(default=5, validator=validators.at_least(0))
    backoff: timedelta = field(default=timedelta(seconds=1), validator=validators.positive)
    queue_size: int = field(default=1000, validator=validators.at_least(1))


def escape(text: str) -> str:
    """Text as Slack's mrkdwn shows it literally: `&`, `<` and `>` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message(event: Event, dashboard_url: str = "") -> dict[str, Any]:
    """The Slack message for `event`: `text` for notifications, `blocks` for the channel."""
    severity = severity_of(event)
    icon = _ICONS[severity]
    pages = links(event, dashboard_url)
    headline = f"{icon} *{escape(event.kind)}*"
    if event.node_id:
        node = escape(event.node_id)
        headline += f" on node <{pages[0][0]}|{node}>" if pages else f" on node `{node}`"
    change = status_change(event)
    lines = [headline]
    if change:
        lines.append(escape(change))
    if event.reason:
        lines.append(escape(event.reason))
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), _SECTION_CHARS)},
        }
    ]
    details = dict(event.details)
    if event.actor:
        details = {"actor": event.actor, **details}
    if details:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": _cut(f"*{escape(key)}*\n{escape(value)}", _FIELD_CHARS),
                    }
                    for key, value in list(details.items())[:_FIELDS]
                ],
            }
        )
    context = [severity.value, event_document(event)["time"]]
    context += [f"<{href}|{escape(text)}>" for href, text in pages]
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    # Escaped here too: Slack reads `<!channel>` in a node's reason as a mention.
    return {"text": f"{icon} [{severity.value}] {escape(summary(event))}", "blocks": blocks}


class SlackNotifier:
    Settings = SlackSettings

    def __init__(self, settings: SlackSettings, name: str = "slack") -> None:
        self.settings = settings
        self.name = name
        url = read_secret(
            name, "webhook_url_env", settings.webhook_url_env, "the Slack incoming webhook URL"
        )
        if not url.startswith(("https://", "http://")):
            raise NavarchError(
                f"notifiers.{name}.webhook_url_env: the environment variable "
                f"{settings.webhook_url_env} does not hold an http:// or https:// URL; set it "
                "to the Slack incoming webhook URL"
            )
        from navarch.plugins.builtin.delivery import Delivery

        self.delivery: Delivery = Delivery(
            name,
            "Slack",
            url,
            timeout=settings.timeout.total_seconds(),
            retries=settings.retries,
            backoff=settings.backoff.total_seconds(),
            queue_size=settings.queue_size,
        )

    def notify(self, event: Event) -> None:
        if not self.settings.admits(event):
            return
        body = json.dumps(message(event, self.settings.dashboard_url), ensure_ascii=False)
        self.delivery.put(body.encode(), about(event))

    async def run(self) -> None:
        await self.delivery.run()


@hookimpl
def navarch_notifiers(register: Register) -> None:
    register("slack", SlackNotifier)
