// The confirmation every write asks for: what will happen, and a reason that is recorded.

import { errorLine } from "./api.js";
import { h } from "./dom.js";

// Opens a modal; `act(reason)` runs on confirm, and its error stays in the dialog. With
// `reason: false` (a call that records none) the dialog only asks to confirm.
export function confirmWithReason({ title, text, confirm, danger = false, reason: ask = true, act }) {
  const reason = h("textarea", {
    name: "reason", rows: 3, maxlength: 1024, required: true,
    placeholder: "Why (recorded in the events)",
  });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const button = h("button", { type: "submit", class: danger ? "danger" : "primary", disabled: ask },
    confirm);
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  const form = h("form", { method: "dialog" },
    h("h2", {}, title),
    h("p", {}, text),
    ask ? h("label", {}, "Reason", reason) : null,
    error,
    h("div", { class: "dialog-buttons" }, cancel, button));
  const dialog = h("dialog", { class: "confirm" }, form);
  reason.addEventListener("input", () => {
    button.disabled = reason.value.trim() === "";
  });
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const why = reason.value.trim();
    if (ask && !why) {
      return;
    }
    button.disabled = true;
    error.hidden = true;
    try {
      await act(why);
      dialog.close();
    } catch (failure) {
      error.textContent = errorLine(failure);
      error.hidden = false;
      button.disabled = false;
    }
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  (ask ? reason : button).focus();
  return dialog;
}
