// The events table that several pages show.

import { h, label, link, table, when, empty } from "./dom.js";

export function eventsTable(events, navigate, { showNode = true } = {}) {
  if (!events.length) {
    return empty("No events.");
  }
  const headings = ["When", "Kind", ...(showNode ? ["Node"] : []), "Actor", "What"];
  return table(headings, events.map((event) => [
    when(event.time),
    h("span", { class: "mono" }, event.kind),
    ...(showNode ? [event.nodeId ? link(`/ui/nodes/${encodeURIComponent(event.nodeId)}`, event.nodeId, navigate) : (event.details && event.details.pool ? `pool ${event.details.pool}` : "")] : []),
    event.actor || "",
    describe(event),
  ]), { class: "events" });
}

function describe(event) {
  const parts = [];
  if (event.fromStatus || event.toStatus) {
    parts.push(`${label(event.fromStatus) || "new"} → ${label(event.toStatus)}`);
  }
  if (event.reason) {
    parts.push(event.reason);
  }
  const details = event.details || {};
  if (details.rule && !(event.reason || "").includes(details.rule)) {
    parts.push(`rule ${details.rule}`);
  }
  if (details.types) {
    parts.push(details.types);
  }
  if (details.xids) {
    parts.push(`XID ${details.xids}`);
  }
  if (details.step) {
    parts.push(label(details.step));
  }
  return parts.join(" · ");
}
