// The nodes page: a filterable, sortable table, paged by the server.

import { call } from "./api.js";
import { badge, empty, h, label, labels, link, number, replace, when } from "./dom.js";
import { HEALTH_STATUSES, NODE_STATUSES } from "./palette.js";

const PAGE_SIZE = 50;
const COLUMNS = [
  ["Node", "id"],
  ["Status", "status"],
  ["Health", "health"],
  ["Pool", "pool"],
  ["Provider", "provider"],
  ["Region", "region"],
  ["Labels", ""],
  ["GPUs", "gpus"],
  ["Last heartbeat", "last_heartbeat"],
];

function select(name, title, values, chosen) {
  return h("label", {}, title, h("select", { name },
    h("option", { value: "" }, "any"),
    values.map((value) => h("option", { value, selected: value === chosen }, label(value) || value))));
}

export function mount(root, { navigate, query, refresh: refreshPage }) {
  document.title = "Nodes · navarch";
  const state = {
    status: query.get("status") || "",
    health: query.get("health") || "",
    pool: query.get("pool") || "",
    q: query.get("q") || "",
    sort: query.get("sort") || "id",
  };
  // Tokens of the pages before the current one, and the current page's own token.
  let previous = [];
  let token = "";
  let next = "";

  const search = h("input", {
    type: "search", name: "q", value: state.q, placeholder: "Node id, hostname or label",
    "aria-label": "Search nodes",
  });
  const poolSelect = select("pool", "Pool", state.pool ? [state.pool] : [], state.pool);
  const filters = h("form", { class: "filters", role: "search" },
    h("label", {}, "Search", search),
    select("status", "Status", NODE_STATUSES, state.status),
    select("health", "Health", HEALTH_STATUSES, state.health),
    poolSelect);
  const sub = h("p", { class: "sub", id: "nodes-count" });
  const head = h("tr");
  const body = h("tbody");
  const pageInfo = h("span");
  const back = h("button", { type: "button", class: "small", disabled: true }, "Previous");
  const forward = h("button", { type: "button", class: "small", disabled: true }, "Next");
  replace(root,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Nodes"), sub)),
    h("section", { class: "card" },
      filters,
      h("div", { class: "table-wrap" }, h("table", { id: "nodes-table" }, h("thead", {}, head), body)),
      h("div", { class: "pager" }, pageInfo, back, forward)));

  function drawHead() {
    const key = state.sort.replace(/^-/, "");
    const descending = state.sort.startsWith("-");
    replace(head, COLUMNS.map(([title, sortKey]) => {
      if (!sortKey) {
        return h("th", {}, title);
      }
      const sorted = sortKey === key;
      const cell = h("th", {
        class: "sortable" + (sorted ? (descending ? " sorted-desc" : " sorted-asc") : ""),
        "aria-sort": sorted ? (descending ? "descending" : "ascending") : "none",
        "data-sort": sortKey,
        tabindex: 0,
      }, title);
      const choose = () => {
        state.sort = sorted && !descending ? `-${sortKey}` : sortKey;
        restart();
      };
      cell.addEventListener("click", choose);
      cell.addEventListener("keydown", (event) => {
        if (event.key === "Enter") {
          choose();
        }
      });
      return cell;
    }));
  }

  function remember() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(state)) {
      if (value && !(key === "sort" && value === "id")) {
        params.set(key, value);
      }
    }
    const text = params.toString();
    history.replaceState(null, "", "/ui/nodes" + (text ? `?${text}` : ""));
  }

  function restart() {
    previous = [];
    token = "";
    remember();
    drawHead();
    refreshPage();
  }

  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.q = search.value.trim();
      restart();
    }, 300);
  });
  filters.addEventListener("submit", (event) => event.preventDefault());
  filters.addEventListener("change", (event) => {
    if (event.target.tagName === "SELECT") {
      state[event.target.name] = event.target.value;
      restart();
    }
  });
  back.addEventListener("click", () => {
    token = previous.pop() || "";
    refreshPage();
  });
  forward.addEventListener("click", () => {
    previous.push(token);
    token = next;
    refreshPage();
  });
  drawHead();

  let poolsKnown = false;

  async function refresh() {
    const request = { orderBy: state.sort, pageSize: PAGE_SIZE };
    if (state.status) request.statuses = [state.status];
    if (state.health) request.healths = [state.health];
    if (state.pool) request.pool = state.pool;
    if (state.q) request.query = state.q;
    if (token) request.pageToken = token;
    const [answer, pools] = await Promise.all([
      call("ListNodes", request),
      poolsKnown ? null : call("ListPools", {}),
    ]);
    if (pools) {
      poolsKnown = true;
      const names = (pools.pools || []).map((pool) => pool.name);
      if (state.pool && !names.includes(state.pool)) {
        names.push(state.pool);
      }
      replace(poolSelect, "Pool", select("pool", "Pool", names, state.pool).lastChild);
    }
    const rows = answer.nodes || [];
    const total = answer.total || 0;
    next = answer.nextPageToken || "";
    const first = previous.length * PAGE_SIZE;
    replace(sub, `${number(total)} ${total === 1 ? "node matches" : "nodes match"}`);
    replace(pageInfo, rows.length ? `${number(first + 1)}–${number(first + rows.length)} of ${number(total)}` : "");
    back.disabled = previous.length === 0;
    forward.disabled = !next;
    if (!rows.length) {
      replace(body, h("tr", {}, h("td", { colspan: COLUMNS.length }, empty("No node matches these filters."))));
      return;
    }
    replace(body, rows.map((node) => h("tr", { "data-node": node.nodeId },
      h("td", {}, link(`/ui/nodes/${encodeURIComponent(node.nodeId)}`, node.nodeId, navigate),
        node.hostname && node.hostname !== node.nodeId ? h("div", { class: "muted" }, node.hostname) : null),
      h("td", {}, badge(node.status)),
      h("td", {}, badge(node.health)),
      h("td", {}, node.pool ? link(`/ui/pools/${encodeURIComponent(node.pool)}`, node.pool, navigate) : ""),
      h("td", {}, node.provider || ""),
      h("td", {}, [node.region, node.zone].filter(Boolean).join(" / ")),
      h("td", {}, labels(node.labels)),
      h("td", { class: "num" }, number((node.gpus || []).length)),
      h("td", {}, when(node.lastHeartbeatAt)))));
  }

  return { refresh };
}
