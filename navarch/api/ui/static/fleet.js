// The fleet page: totals, nodes by status and health over time, breakers, recent events.

import { call } from "./api.js";
import { stackedArea } from "./charts.js";
import { badge, clock, empty, h, label, link, number, replace, section, stat, table, when } from "./dom.js";
import { eventsTable } from "./events.js";
import { countSeries, HEALTHS, STATUSES } from "./palette.js";

const HISTORY_MS = 6 * 3600 * 1000;

export function mount(root, { navigate }) {
  document.title = "Fleet · navarch";
  const sub = h("p", { class: "sub" });
  const stats = h("div", { class: "stats", id: "fleet-stats" });
  const statusChart = h("section", { class: "card", id: "chart-status" });
  const healthChart = h("section", { class: "card", id: "chart-health" });
  const breakers = h("div");
  const poolsBox = h("div");
  const events = h("div");
  replace(root,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Fleet"), sub)),
    stats,
    h("div", { class: "grid two" }, statusChart, healthChart),
    h("div", { class: "grid two" },
      section("Remediation breakers", breakers), section("Pools", poolsBox)),
    h("section", { class: "card", id: "recent-events" }, h("h2", {}, "Recent events"), events));

  let history = [];

  async function refresh() {
    const newest = history.length ? history[history.length - 1].time : undefined;
    const summary = await call("GetFleetSummary", newest ? { historyAfter: newest } : {});
    history = history.concat(summary.history || []);
    const cutoff = Date.parse(summary.time) - HISTORY_MS;
    history = history.filter((point) => Date.parse(point.time) >= cutoff);

    const statuses = summary.statuses || {};
    const healths = summary.healths || {};
    const unhealthyGpus = summary.gpusUnhealthy || 0;
    const steps = (summary.remediationSteps || [])
      .map((one) => `${one.count} ${label(one.step)}`).join(", ");
    replace(sub, `${number(summary.nodes || 0)} nodes known · as of ${clock(summary.time)}`);
    replace(stats,
      stat("Nodes in service", number(statuses.active || 0), "good"),
      stat("Out of service", number((statuses.cordoned || 0) + (statuses.draining || 0) + (statuses.drained || 0)),
        "warn"),
      stat("Unhealthy nodes", number(statuses.unhealthy || 0), statuses.unhealthy ? "bad" : ""),
      stat("GPUs", number(summary.gpusTotal || 0)),
      stat("Unhealthy GPUs", number(unhealthyGpus), unhealthyGpus ? "bad" : ""),
      h("div", { class: "stat " + (summary.openRemediations ? "warn" : ""), id: "open-remediations" },
        h("div", { class: "stat-value" },
          link("/ui/remediations", number(summary.openRemediations || 0), navigate)),
        h("div", { class: "stat-title" }, "Open remediations" + (steps ? ` (${steps})` : ""))));

    replace(statusChart, stackedArea("Nodes by status (terminated not shown)",
      countSeries(history, "statuses", STATUSES)));
    replace(healthChart, stackedArea("Nodes by health", countSeries(history, "healths", HEALTHS)));

    const breakerRows = (summary.breakers || []).map((breaker) => [
      link(`/ui/pools/${encodeURIComponent(breaker.pool)}`, breaker.pool, navigate),
      badge(breaker.open ? "open" : "closed"),
      breaker.paused ? badge("paused") : h("span", { class: "muted" }, "running"),
      breaker.open ? [when(breaker.since), " ", breaker.reason || ""] : "",
    ]);
    replace(breakers,
      summary.paused ? h("p", { class: "error" }, "Remediation is paused for every pool.") : null,
      breakerRows.length
        ? table(["Pool", "Breaker", "Remediation", "Opened"], breakerRows, { id: "breakers" })
        : empty("No pool has health settings."));

    const poolRows = (summary.pools || []).map((pool) => [
      link(`/ui/pools/${encodeURIComponent(pool.name)}`, pool.name, navigate),
      number(pool.size || 0), number(pool.target || 0), number(pool.inFlight || 0),
      `${number(pool.minNodes || 0)}–${number(pool.maxNodes || 0)}`,
    ]);
    replace(poolsBox, poolRows.length
      ? table(["Pool", "Size", "Target", "In flight", "Min–max"], poolRows)
      : empty("No pools are configured."));

    replace(events, eventsTable(summary.recentEvents || [], navigate));
  }

  return { refresh };
}
