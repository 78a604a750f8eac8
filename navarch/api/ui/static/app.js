// The dashboard's shell: the router over /ui/ paths, the live stream, and the refresh loop.

import { errorLine, loadSession, role } from "./api.js";
import { h, replace } from "./dom.js";
import * as fleet from "./fleet.js";
import * as node from "./node.js";
import * as nodes from "./nodes.js";
import * as pool from "./pool.js";
import * as pools from "./pools.js";
import * as remediations from "./remediations.js";

const ROUTES = [
  [/^\/ui\/?$/, fleet, "fleet"],
  [/^\/ui\/nodes\/?$/, nodes, "nodes"],
  [/^\/ui\/nodes\/([^/]+)$/, node, "nodes"],
  [/^\/ui\/pools\/?$/, pools, "pools"],
  [/^\/ui\/pools\/([^/]+)$/, pool, "pools"],
  [/^\/ui\/remediations\/?$/, remediations, "remediations"],
];
const DEBOUNCE_MS = 1000;
const POLL_MS = 15000;

const root = document.getElementById("page");
const banner = document.getElementById("banner");
const live = document.getElementById("live");
let current = null;
let refreshing = null;
let again = false;
let debounce = null;

export function navigate(href, { replaceState = false } = {}) {
  if (replaceState) {
    history.replaceState(null, "", href);
  } else {
    history.pushState(null, "", href);
  }
  route();
}

function route() {
  if (current && current.unmount) {
    current.unmount();
  }
  const path = location.pathname;
  let match = null;
  let page = null;
  let section = "";
  for (const [pattern, module, name] of ROUTES) {
    match = path.match(pattern);
    if (match) {
      page = module;
      section = name;
      break;
    }
  }
  for (const anchor of document.querySelectorAll("nav a[data-section]")) {
    anchor.classList.toggle("active", anchor.dataset.section === section);
    if (anchor.dataset.section === section) {
      anchor.setAttribute("aria-current", "page");
    } else {
      anchor.removeAttribute("aria-current");
    }
  }
  replace(root);
  showError(null);
  if (!page) {
    current = null;
    document.title = "Not found · navarch";
    replace(root, h("h1", {}, "Not found"), h("p", {}, "No dashboard page has this address."));
    return;
  }
  const params = match.slice(1).map((part) => decodeURIComponent(part));
  const context = { navigate, params, query: new URLSearchParams(location.search), showError, refresh };
  current = page.mount(root, context);
  refresh();
}

// A page in a background tab waits: it refreshes once when it is shown again.
let stale = false;

export async function refresh() {
  if (!current) {
    return;
  }
  if (document.hidden) {
    stale = true;
    return;
  }
  if (refreshing) {
    again = true;
    return refreshing;
  }
  const page = current;
  refreshing = (async () => {
    try {
      await page.refresh();
      if (page === current) {
        showError(null);
      }
    } catch (error) {
      if (page === current) {
        showError(errorLine(error));
      }
    }
  })();
  await refreshing;
  refreshing = null;
  if (again) {
    again = false;
    await refresh();
  }
}

function showError(text) {
  banner.hidden = !text;
  banner.textContent = text || "";
}

// A change refreshes the page a second later; the changes of that second ride along, and a
// fleet that never stops changing still refreshes once a second.
function soon() {
  if (debounce === null) {
    debounce = setTimeout(() => {
      debounce = null;
      refresh();
    }, DEBOUNCE_MS);
  }
}

function listen() {
  const stream = new EventSource("/ui/stream");
  stream.addEventListener("open", () => {
    live.textContent = "live";
    live.className = "live on";
  });
  stream.addEventListener("error", () => {
    live.textContent = "reconnecting";
    live.className = "live off";
  });
  stream.addEventListener("change", soon);
  stream.addEventListener("resync", soon);
}

async function start() {
  let session;
  try {
    session = await loadSession();
  } catch (error) {
    showError(errorLine(error));
    return;
  }
  if (!session) {
    location.assign("/ui/signin?next=" + encodeURIComponent(location.pathname));
    return;
  }
  document.getElementById("role").textContent = role();
  document.body.dataset.role = role();
  const csrf = document.getElementById("signout-csrf");
  if (csrf) {
    csrf.value = session.csrf;
  }
  for (const anchor of document.querySelectorAll("a[data-section], a.brand")) {
    anchor.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) {
        return;
      }
      event.preventDefault();
      navigate(anchor.getAttribute("href"));
    });
  }
  window.addEventListener("popstate", route);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && stale) {
      stale = false;
      refresh();
    }
  });
  listen();
  setInterval(refresh, POLL_MS);
  route();
}

start();
