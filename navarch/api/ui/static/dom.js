// Building the page from data: every value goes in as text, never as markup.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) {
      continue;
    }
    if (Array.isArray(child)) {
      append(element, child);
    } else if (child instanceof Node) {
      element.appendChild(child);
    } else {
      element.appendChild(document.createTextNode(String(child)));
    }
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

// "NODE_STATUS_ACTIVE" -> "active", "REMEDIATION_STEP_DONE" -> "done".
const PREFIXES = [
  "NODE_STATUS_", "HEALTH_STATUS_", "COMMAND_TYPE_", "COMMAND_STATUS_", "REMEDIATION_STEP_",
  "REMEDIATION_ACTION_", "BOOTSTRAP_STATE_", "PREFLIGHT_STATE_", "HEALTH_EVENT_TYPE_",
];

export function label(value) {
  if (!value) {
    return "";
  }
  let text = String(value);
  for (const prefix of PREFIXES) {
    if (text.startsWith(prefix)) {
      text = text.slice(prefix.length);
      break;
    }
  }
  return text.toLowerCase().replaceAll("_", " ");
}

// A coloured pill for a status, health, step or state; its class follows the value.
export function badge(value) {
  const text = label(value) || "unknown";
  return h("span", { class: "badge badge-" + text.replaceAll(" ", "-") }, text);
}

export function when(value) {
  if (!value) {
    return h("span", { class: "muted" }, "never");
  }
  const date = new Date(value);
  return h("time", { datetime: value, title: date.toISOString() }, ago(date));
}

export function ago(date) {
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  if (seconds < 0) {
    return "in " + span(-seconds);
  }
  if (seconds < 5) {
    return "just now";
  }
  return span(seconds) + " ago";
}

export function span(seconds) {
  if (seconds < 60) {
    return `${Math.round(seconds)} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min`;
  }
  if (seconds < 86400) {
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  }
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
}

export function clock(value) {
  if (!value) {
    return "";
  }
  return new Date(value).toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
}

export function number(value, digits = 0) {
  if (value === undefined || value === null || Number.isNaN(value)) {
    return "–";
  }
  return Number(value).toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

export function bytes(value) {
  if (!value) {
    return "0 B";
  }
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let index = 0;
  let amount = value;
  while (amount >= 1024 && index < units.length - 1) {
    amount /= 1024;
    index += 1;
  }
  return `${amount.toFixed(amount >= 100 || index === 0 ? 0 : 1)} ${units[index]}`;
}

export function link(href, text, navigate) {
  return h("a", {
    href,
    onclick: (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) {
        return;
      }
      event.preventDefault();
      navigate(href);
    },
  }, text);
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

// A table from column headings and rows of cells (strings or nodes).
export function table(headings, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headings.map((heading) => h("th", {}, heading)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))));
}

export function labels(map) {
  const entries = Object.entries(map || {});
  if (!entries.length) {
    return h("span", { class: "muted" }, "–");
  }
  return h("span", { class: "labels" },
    entries.map(([key, value]) => h("span", { class: "label" }, `${key}=${value}`)));
}

export function stat(title, value, tone = "") {
  return h("div", { class: "stat " + tone }, h("div", { class: "stat-value" }, value),
    h("div", { class: "stat-title" }, title));
}
