// The node page: its GPUs, health reports with their rules, commands, events and the buttons.

import { call, canWrite } from "./api.js";
import { confirmWithReason } from "./dialog.js";
import {
  badge, bytes, clock, empty, h, label, labels, link, number, replace, section, table, when,
} from "./dom.js";
import { eventsTable } from "./events.js";

const ACTIONS = [
  {
    type: "COMMAND_TYPE_CORDON", name: "Cordon", from: ["NODE_STATUS_ACTIVE"],
    text: "The node stops taking new work. Work already on it keeps running.",
  },
  {
    type: "COMMAND_TYPE_UNCORDON", name: "Uncordon",
    from: ["NODE_STATUS_CORDONED", "NODE_STATUS_DRAINING", "NODE_STATUS_DRAINED", "NODE_STATUS_UNHEALTHY"],
    text: "The node goes back into service; an open drain is cancelled.",
  },
  {
    type: "COMMAND_TYPE_DRAIN", name: "Drain",
    from: ["NODE_STATUS_ACTIVE", "NODE_STATUS_CORDONED", "NODE_STATUS_UNHEALTHY"],
    text: "The node is cordoned and its daemon moves the work off it.",
  },
  {
    type: "COMMAND_TYPE_TERMINATE", name: "Terminate", danger: true,
    from: ["NODE_STATUS_ACTIVE", "NODE_STATUS_CORDONED", "NODE_STATUS_DRAINING", "NODE_STATUS_DRAINED",
      "NODE_STATUS_UNHEALTHY"],
    text: "The node's daemon shuts the machine down. This cannot be undone.",
  },
];

function meter(percent, warm, hot) {
  const value = Math.max(0, Math.min(100, percent || 0));
  const tone = value >= hot ? " hot" : value >= warm ? " warm" : "";
  const bar = h("span", { class: "meter" + tone }, h("span"));
  bar.firstChild.style.width = `${value}%`;
  return bar;
}

// XIDs by GPU index from `health.reported` events, whose details hold `gpu:xid` pairs.
function xidsByGpu(reports) {
  const byGpu = new Map();
  for (const event of reports) {
    for (const pair of ((event.details || {}).xids || "").split(",")) {
      const [gpu, xid] = pair.split(":");
      if (xid === undefined) {
        continue;
      }
      const list = byGpu.get(gpu) || [];
      list.push({ xid, time: event.time });
      byGpu.set(gpu, list);
    }
  }
  return byGpu;
}

export function mount(root, { navigate, params }) {
  const nodeId = params[0];
  document.title = `${nodeId} · navarch`;
  const title = h("div");
  const buttons = h("div", { class: "actions", id: "node-actions" });
  const facts = h("div");
  const gpus = h("div");
  const latest = h("div");
  const reports = h("div");
  const commands = h("div");
  const episodes = h("div");
  const events = h("div");
  replace(root,
    h("div", { class: "page-head" }, title, buttons),
    h("section", { class: "card", id: "node-gpus" }, h("h2", {}, "GPUs"), gpus),
    h("div", { class: "grid two" }, section("Node", facts), section("Latest health report", latest)),
    h("div", { class: "grid two" },
      h("section", { class: "card", id: "node-reports" }, h("h2", {}, "Health reports"), reports),
      h("section", { class: "card", id: "node-commands" }, h("h2", {}, "Commands"), commands)),
    h("section", { class: "card", id: "node-remediations" }, h("h2", {}, "Remediations"), episodes),
    h("section", { class: "card", id: "node-events" }, h("h2", {}, "Events"), events));

  let node = null;

  function drawButtons() {
    if (!canWrite() || !node) {
      replace(buttons);
      return;
    }
    replace(buttons, ACTIONS.map((action) => {
      const allowed = action.from.includes(node.status);
      return h("button", {
        type: "button",
        class: action.danger ? "danger" : "",
        disabled: !allowed,
        title: allowed ? null : `Not possible while the node is ${label(node.status)}`,
        "data-action": action.name.toLowerCase(),
        onclick: () => ask(action),
      }, action.name);
    }));
  }

  function ask(action) {
    const force = action.type === "COMMAND_TYPE_UNCORDON" && node.status === "NODE_STATUS_UNHEALTHY";
    confirmWithReason({
      title: `${action.name} ${nodeId}?`,
      text: action.text + (force ? " The node is unhealthy: this overrides the health policy." : ""),
      confirm: action.name,
      danger: Boolean(action.danger),
      act: async (reason) => {
        const request = { nodeId, type: action.type, reason };
        if (force) {
          request.parameters = { force: "true" };
        }
        const answer = await call("IssueCommand", request);
        node = answer.node;
        draw(node);
      },
    });
  }

  function draw(current) {
    replace(title,
      h("div", { class: "crumbs" }, link("/ui/nodes", "Nodes", navigate), " / ", current.nodeId),
      h("h1", {}, current.nodeId, " ",
        h("span", { id: "node-status" }, badge(current.status)), " ",
        h("span", { id: "node-health" }, badge(current.health))),
      h("p", { class: "sub", id: "node-reason" }, current.statusReason || ""));
    drawButtons();
    const metrics = current.metrics || {};
    replace(facts, h("dl", { class: "facts" },
      h("dt", {}, "Pool"), h("dd", {}, current.pool ? link(`/ui/pools/${encodeURIComponent(current.pool)}`, current.pool, navigate) : "–"),
      h("dt", {}, "Provider"), h("dd", {}, current.provider || "–"),
      h("dt", {}, "Region / zone"), h("dd", {}, [current.region, current.zone].filter(Boolean).join(" / ") || "–"),
      h("dt", {}, "Instance type"), h("dd", {}, current.instanceType || "–"),
      h("dt", {}, "Hostname"), h("dd", {}, current.hostname || "–"),
      h("dt", {}, "Labels"), h("dd", {}, labels(current.labels)),
      h("dt", {}, "Registered"), h("dd", {}, when(current.registeredAt)),
      h("dt", {}, "Last heartbeat"), h("dd", {}, when(current.lastHeartbeatAt)),
      h("dt", {}, "CPU / memory"), h("dd", {}, `${number(metrics.cpuPercent || 0)} % / ${number(metrics.memoryPercent || 0)} %`)));
  }

  // The GPU's ECC errors since its driver loaded, as its latest heartbeat counts them.
  function eccCounts(reading) {
    const corrected = reading.eccCorrected || 0;
    const uncorrected = reading.eccUncorrected || 0;
    const text = `${corrected} corrected / ${uncorrected} uncorrected`;
    const tone = uncorrected ? "badge badge-unhealthy" : corrected ? "badge badge-degraded" : "muted";
    return h("span", { class: tone }, text);
  }

  function drawGpus(current, xids) {
    const readings = new Map(((current.metrics || {}).gpus || []).map((gpu) => [gpu.index || 0, gpu]));
    const rows = (current.gpus || []).map((gpu) => {
      const index = gpu.index || 0;
      const reading = readings.get(index) || {};
      const total = gpu.memoryTotalBytes || 0;
      const used = reading.memoryUsedBytes || 0;
      const history = xids.get(String(index)) || [];
      return [
        String(index),
        h("div", {}, gpu.name || "GPU", h("div", { class: "muted mono" }, gpu.uuid || "")),
        h("span", { class: reading.temperatureC >= 85 ? "hot" : reading.temperatureC >= 75 ? "warm" : "" },
          `${number(reading.temperatureC || 0)} °C`),
        `${number(reading.powerWatts || 0)} W`,
        h("span", {}, meter(reading.utilizationPercent, 101, 101), `${number(reading.utilizationPercent || 0)} %`),
        h("span", {}, meter(total ? (100 * used) / total : 0, 85, 95), `${bytes(used)} / ${bytes(total)}`),
        eccCounts(reading),
        history.length
          ? h("span", { class: "labels" }, history.map((one) => h("span", { class: "label", title: clock(one.time) }, `XID ${one.xid}`)))
          : h("span", { class: "muted" }, "none"),
      ];
    });
    replace(gpus, rows.length
      ? table(["GPU", "Model", "Temperature", "Power", "Utilization", "Memory", "ECC errors", "XIDs"], rows)
      : empty("The node reported no GPUs."));
  }

  async function refresh() {
    const [answer, reported, history, events50, remediations] = await Promise.all([
      call("GetNode", { nodeId }),
      call("ListEvents", { nodeId, kinds: ["health.reported", "node.health_changed"], limit: 50 }),
      call("ListCommands", { nodeId, limit: 50 }),
      call("ListEvents", { nodeId, limit: 50 }),
      call("ListRemediations", { nodeId, limit: 20 }),
    ]);
    node = answer.node;
    draw(node);
    const healthEvents = reported.events || [];
    drawGpus(node, xidsByGpu(healthEvents.filter((event) => event.kind === "health.reported")));

    const last = node.lastHealthEvents || [];
    replace(latest, last.length
      ? table(["Type", "GPU", "XID", "Message"], last.map((event) => [
        label(event.type),
        event.gpuIndex === undefined || event.gpuIndex < 0 ? "node" : String(event.gpuIndex),
        event.xid ? String(event.xid) : "",
        event.message || "",
      ]))
      : empty("The last report held no health events."));

    replace(reports, healthEvents.length
      ? table(["When", "Report", "Rule"], healthEvents.map((event) => {
        const details = event.details || {};
        const what = event.kind === "health.reported"
          ? [details.types || "", details.xids ? ` · XID ${details.xids}` : "", details.rules ? ` · matched ${details.rules}` : ""].join("")
          : `health ${label(details.from)} → ${label(details.to)}`;
        return [when(event.time), what, details.rule ? h("span", { class: "mono" }, details.rule) : h("span", { class: "muted" }, "–")];
      }))
      : empty("No health reports with events."));

    const open = new Set((answer.openCommands || []).map((command) => command.commandId));
    const list = history.commands || [];
    replace(commands, list.length
      ? table(["Issued", "Command", "Status", "Reason", "By"], list.map((command) => [
        when(command.issuedAt),
        label(command.type),
        h("span", {}, badge(command.status), open.has(command.commandId) ? " open" : "",
          command.resultMessage ? h("div", { class: "muted" }, command.resultMessage) : null),
        command.reason || "",
        command.issuedBy || "",
      ]))
      : empty("No commands."));

    const eps = remediations.remediations || [];
    replace(episodes, eps.length
      ? table(["Episode", "Action", "Rule", "Step", "Started", "Detail"], eps.map((episode) => [
        h("span", { class: "mono" }, episode.episodeId),
        label(episode.action || "REMEDIATION_ACTION_REPLACE"),
        episode.rule || "",
        badge(episode.step),
        when(episode.startedAt),
        episode.detail || "",
      ]))
      : empty("No remediation episodes."));

    replace(events, eventsTable(events50.events || [], navigate, { showNode: false }));
  }

  return { refresh };
}
