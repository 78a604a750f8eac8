// The remediations page: the pauses and breakers, and every episode with its steps and timings.

import { call, canWrite } from "./api.js";
import { confirmWithReason } from "./dialog.js";
import { badge, empty, h, label, link, replace, section, span, table, when } from "./dom.js";

const STEP_KINDS = [
  "remediation.started", "remediation.step", "remediation.step_failed", "remediation.held",
  "remediation.completed", "remediation.cancelled",
];
const ENDED = ["REMEDIATION_STEP_DONE", "REMEDIATION_STEP_CANCELLED"];

// Each episode's steps in order, with the time each began, from the remediation events.
function stepsByEpisode(events) {
  const byEpisode = new Map();
  for (const event of [...events].reverse()) {
    const details = event.details || {};
    if (!details.episode) {
      continue;
    }
    const steps = byEpisode.get(details.episode) || [];
    const step = event.kind === "remediation.step_failed" ? "failed attempt" : label(details.step);
    if (!steps.length || steps[steps.length - 1].step !== step) {
      steps.push({ step, time: Date.parse(event.time), reason: event.reason || "" });
    }
    byEpisode.set(details.episode, steps);
  }
  return byEpisode;
}

function timeline(episode, steps) {
  if (!steps || !steps.length) {
    return h("span", { class: "muted" }, label(episode.step));
  }
  const start = steps[0].time;
  return h("ol", { class: "steps" }, steps.map((one) => h("li", {
    class: "done", title: one.reason,
  }, `${one.step} `, h("span", { class: "muted" }, `+${span((one.time - start) / 1000)}`))));
}

export function mount(root, { navigate, refresh: refreshPage }) {
  document.title = "Remediations · navarch";
  const controlsBox = h("div", { id: "remediation-controls" });
  const body = h("div");
  replace(root,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Remediations"),
      h("p", { class: "sub" }, "Episodes that take a failing node out of service and replace, reset or reboot it."))),
    section("Controls", controlsBox),
    h("section", { class: "card" }, h("h2", {}, "Episodes"), body));

  // `request(reason)` builds the call; a call without a reason field asks for none.
  function act(title, text, confirm, method, request, danger = false) {
    return () => confirmWithReason({
      title, text, confirm, danger, reason: request.length > 0,
      act: async (reason) => {
        await call(method, { ...request(reason) });
        await refreshPage();
      },
    });
  }

  function button(name, handler, danger = false) {
    return h("button", { type: "button", class: "small" + (danger ? " danger" : ""), "data-action": name.toLowerCase(), onclick: handler }, name);
  }

  async function refresh() {
    const [answer, pools, events] = await Promise.all([
      call("ListRemediations", { limit: 200 }),
      call("ListPools", {}),
      call("ListEvents", { kinds: STEP_KINDS, limit: 1000 }),
    ]);
    const controls = answer.controls || {};
    const open = new Set(controls.openBreakers || []);
    const paused = new Set(controls.pausedPools || []);
    const names = [...new Set([...(pools.pools || []).map((pool) => pool.name), ...open, ...paused])].sort();
    const admin = canWrite();

    const global = h("p", {}, "Every pool: ", controls.paused ? badge("paused") : badge("running"), " ",
      admin
        ? (controls.paused
          ? button("Resume", act("Resume remediation everywhere?", "The global pause is lifted; each pool's own pause stays.", "Resume", "ResumeRemediation", () => ({})))
          : button("Pause", act("Pause remediation everywhere?", "Open episodes stop before their next step; new episodes wait.", "Pause", "PauseRemediation", (reason) => ({ reason }))))
        : null);
    replace(controlsBox, global, names.length
      ? table(["Pool", "Remediation", "Breaker", ""], names.map((pool) => [
        link(`/ui/pools/${encodeURIComponent(pool)}`, pool, navigate),
        badge(paused.has(pool) ? "paused" : "running"),
        badge(open.has(pool) ? "open" : "closed"),
        admin ? h("span", { class: "actions" },
          paused.has(pool)
            ? button("Resume", act(`Resume remediation in ${pool}?`, "Episodes in this pool go on.", "Resume", "ResumeRemediation", () => ({ pool })))
            : button("Pause", act(`Pause remediation in ${pool}?`, "Open episodes stop before their next step; new episodes wait.", "Pause", "PauseRemediation", (reason) => ({ pool, reason }))),
          open.has(pool)
            ? button("Reset breaker", act(`Reset the breaker of ${pool}?`, "New episodes start again. Episodes the breaker held stay held.", "Reset breaker", "ResetBreaker", () => ({ pool })))
            : null) : null,
      ]), { id: "remediation-pools" })
      : empty("No pools are configured."));

    const steps = stepsByEpisode(events.events || []);
    const episodes = answer.remediations || [];
    replace(body, episodes.length
      ? table(["Episode", "Node", "Pool", "Action", "Rule", "Step", "Steps", "Started", "Took", "Detail", ""],
        episodes.map((episode) => {
          const ended = ENDED.includes(episode.step);
          const end = ended ? Date.parse(episode.updatedAt || episode.startedAt) : Date.now();
          const took = episode.startedAt ? span(Math.max(0, end - Date.parse(episode.startedAt)) / 1000) : "";
          return [
            h("span", { class: "mono" }, episode.episodeId),
            link(`/ui/nodes/${encodeURIComponent(episode.nodeId)}`, episode.nodeId, navigate),
            episode.pool || "",
            label(episode.action || "REMEDIATION_ACTION_REPLACE") + (episode.gpuIndex >= 0 ? ` GPU ${episode.gpuIndex}` : ""),
            h("span", { class: "mono" }, episode.rule || ""),
            badge(episode.step),
            timeline(episode, steps.get(episode.episodeId)),
            when(episode.startedAt),
            h("span", { class: "nowrap" }, took, ended ? "" : h("span", { class: "muted" }, " so far")),
            episode.detail || "",
            admin && !ended
              ? button("Cancel", act(`Cancel episode ${episode.episodeId}?`, "The episode ends now; the node stays out of service.", "Cancel episode", "CancelRemediation", (reason) => ({ episodeId: episode.episodeId, reason })), true)
              : "",
          ];
        }), { id: "remediations-table" })
      : empty("No remediation episodes."));
  }

  return { refresh };
}
