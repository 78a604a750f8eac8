// Calls to the control plane's API from the signed-in page: Connect unary calls with JSON, the
// session cookie, and the CSRF header the server checks on every call.

const SERVICE = "/navarch.v1.ControlPlaneService/";

let session = null;

export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// The signed-in role ("admin" or "viewer") and the CSRF token; null when the session ended.
export async function loadSession() {
  const response = await fetch("/ui/session", { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401 || response.status === 303 || response.redirected) {
    return null;
  }
  if (!response.ok) {
    throw new ApiError("unavailable", `the control plane answered ${response.status} for the session`);
  }
  session = await response.json();
  return session;
}

export function role() {
  return session ? session.role : "";
}

export function canWrite() {
  return role() === "admin";
}

export async function call(method, body = {}) {
  let response;
  try {
    response = await fetch(SERVICE + method, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: {
        "Content-Type": "application/json",
        "X-Navarch-CSRF": session ? session.csrf : "",
      },
      body: JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError("unavailable", `${method}: the control plane cannot be reached`);
  }
  const text = await response.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch (error) {
    data = {};
  }
  if (!response.ok) {
    if (response.status === 401) {
      window.location.assign("/ui/signin?next=" + encodeURIComponent(window.location.pathname));
    }
    const code = typeof data.code === "string" ? data.code : `http ${response.status}`;
    const message = typeof data.message === "string" ? data.message : response.statusText;
    throw new ApiError(code, `${method}: ${code}: ${message}`);
  }
  return data;
}

// One line for people, whatever was thrown.
export function errorLine(error) {
  if (error instanceof ApiError) {
    return error.message;
  }
  return String(error && error.message ? error.message : error);
}
