// The pools page: every configured pool with its size, bounds, target and breaker.

import { call } from "./api.js";
import { badge, empty, h, link, number, replace, table, when } from "./dom.js";

export function mount(root, { navigate }) {
  document.title = "Pools · navarch";
  const body = h("div");
  replace(root,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Pools"),
      h("p", { class: "sub" }, "Each pool's size against its bounds and target, and its last scaling decision."))),
    h("section", { class: "card" }, body));

  async function refresh() {
    const [answer, remediation] = await Promise.all([
      call("ListPools", {}),
      call("ListRemediations", { limit: 1 }),
    ]);
    const controls = remediation.controls || {};
    const open = new Set(controls.openBreakers || []);
    const paused = new Set(controls.pausedPools || []);
    const pools = answer.pools || [];
    replace(body, pools.length
      ? table(["Pool", "Instance type", "Size", "Healthy", "Target", "In flight", "Min–max", "Utilization",
        "Autoscaler", "Breaker", "Blocked", "Last decision"], pools.map((pool) => [
        link(`/ui/pools/${encodeURIComponent(pool.name)}`, pool.name, navigate),
        pool.instanceType || "",
        number(pool.size || 0),
        number(pool.healthy || 0),
        number(pool.target || 0) + (pool.manualTarget !== undefined && pool.manualTarget !== null ? ` (manual ${pool.manualTarget})` : ""),
        number(pool.inFlight || 0),
        `${number(pool.minNodes || 0)}–${number(pool.maxNodes || 0)}`,
        pool.utilization === undefined || pool.utilization === null ? "–" : `${number(pool.utilization)} %`,
        pool.autoscaler || h("span", { class: "muted" }, "none"),
        h("span", {}, badge(open.has(pool.name) ? "open" : "closed"), paused.has(pool.name) || controls.paused ? [" ", badge("paused")] : null),
        (pool.blocked || []).length ? badge(`${pool.blocked.length} blocked`) : h("span", { class: "muted" }, "none"),
        pool.lastDecision ? h("span", {}, pool.lastDecision, h("div", { class: "muted" }, when(pool.lastDecisionAt))) : "",
      ]), { id: "pools-table" })
      : empty("No pools are configured. Pools are defined in the control plane's configuration file."));
  }

  return { refresh };
}
