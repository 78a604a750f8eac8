// One pool: size against min, max and target over time, its decisions, blocks and instances.

import { call } from "./api.js";
import { lineChart } from "./charts.js";
import { badge, clock, empty, h, label, link, number, replace, section, stat, table, when } from "./dom.js";

function series(history, field, name, color, dashed = false) {
  return {
    name, color, dashed,
    points: history.map((point) => ({ time: new Date(point.time), value: point[field] || 0 })),
  };
}

export function mount(root, { navigate, params }) {
  const name = params[0];
  document.title = `${name} · navarch`;
  const sub = h("p", { class: "sub" });
  const stats = h("div", { class: "stats" });
  const chart = h("section", { class: "card", id: "pool-chart" });
  const decisions = h("div");
  const blocked = h("div");
  const instances = h("div");
  replace(root,
    h("div", { class: "page-head" }, h("div", {},
      h("div", { class: "crumbs" }, link("/ui/pools", "Pools", navigate), " / ", name),
      h("h1", {}, name), sub)),
    stats,
    h("div", { class: "grid two" }, chart,
      h("section", { class: "card", id: "pool-decisions" }, h("h2", {}, "Scaling decisions"), decisions)),
    h("section", { class: "card", id: "pool-blocks" }, h("h2", {}, "Provider blocks"), blocked),
    h("section", { class: "card", id: "pool-instances" }, h("h2", {}, "Instances"), instances));

  async function refresh() {
    const { pool } = await call("GetPool", { name });
    replace(sub, [pool.instanceType, pool.autoscaler ? `autoscaler ${pool.autoscaler}` : "no autoscaler"]
      .filter(Boolean).join(" · "));
    replace(stats,
      stat("Size", number(pool.size || 0)),
      stat("Healthy", number(pool.healthy || 0), "good"),
      stat("Target", number(pool.target || 0)),
      stat("In flight", number(pool.inFlight || 0)),
      stat("Min – max", `${number(pool.minNodes || 0)} – ${number(pool.maxNodes || 0)}`),
      stat("Utilization", pool.utilization === undefined || pool.utilization === null ? "–" : `${number(pool.utilization)} %`));

    const history = pool.history || [];
    replace(chart, lineChart("Size against target and bounds", [
      series(history, "size", "Size", "blue"),
      series(history, "target", "Target", "purple", true),
      series(history, "inFlight", "In flight", "teal"),
      series(history, "minNodes", "Min", "grey", true),
      series(history, "maxNodes", "Max", "red", true),
    ]));

    const list = pool.decisions || [];
    replace(decisions, list.length
      ? table(["When", "Target", "Recommended", "Reason"], list.map((decision) => [
        when(decision.time),
        `${number(decision.previous || 0)} → ${number(decision.target || 0)}`,
        decision.recommended === undefined || decision.recommended === null ? "–" : number(decision.recommended),
        decision.reason || "",
      ]))
      : empty(pool.lastDecision ? `Last: ${pool.lastDecision} (${clock(pool.lastDecisionAt)})` : "No scaling decisions yet."));

    const blocks = pool.blocked || [];
    replace(blocked, blocks.length
      ? table(["Provider", "Kind", "Where", "Instance type", "Until", "Reason"], blocks.map((block) => [
        block.provider, badge(block.kind),
        [block.region, block.zone].filter(Boolean).join(" / ") || "all",
        (block.instanceType || "all") + (block.spot ? " (spot)" : ""),
        block.until ? when(block.until) : "until cleared",
        block.reason || "",
      ]))
      : empty("No provider is blocked."));

    const rows = pool.instances || [];
    replace(instances, rows.length
      ? table(["Instance", "Provider", "Status", "Where", "Created", "Bootstrap", "Preflight"], rows.map((one) => [
        link(`/ui/nodes/${encodeURIComponent(one.instanceId)}`, one.instanceId, navigate),
        one.provider || "",
        h("span", {}, badge(one.status), one.reason ? h("div", { class: "muted" }, one.reason) : null),
        [one.region, one.zone].filter(Boolean).join(" / "),
        when(one.createdAt),
        one.bootstrap
          ? h("span", {}, badge(one.bootstrap.state), ` ${one.bootstrap.method || ""}`,
            one.bootstrap.detail ? h("div", { class: "muted" }, one.bootstrap.detail) : null)
          : h("span", { class: "muted" }, "none"),
        one.preflight
          ? h("span", {}, badge(one.preflight.state), one.preflight.detail ? h("div", { class: "muted" }, one.preflight.detail) : null)
          : h("span", { class: "muted" }, "none"),
      ]))
      : empty("The pool has no instances."));
  }

  return { refresh };
}
