// Small helpers of the browser app: DOM building, ids, times, errors and
// the alert line. Every other module imports from here.

export const $ = (id) => document.getElementById(id);

// el builds an element: el("li", {class: "x", onclick: f}, child, "text").
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

export const newId = () => Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
export const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "");

// fmtSize says a byte count the way people read it.
export function fmtSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// ServerError is an error reply: its frame type and data.
export class ServerError extends Error {
  constructor(type, data) {
    super((data && data.message) || type);
    this.type = type;
    this.code = data && data.code;
    this.fields = (data && data.fields) || [];
    this.retryAfterMs = data && data.retryAfterMs;
  }
  describe() {
    const f = this.fields.map((x) => `${x.field} ${x.reason}`).join("; ");
    return `${this.message}${f ? ` (${f})` : ""}${this.retryAfterMs ? `; retry in ${Math.ceil(this.retryAfterMs / 1000)} s` : ""}`;
  }
}

let alertTimer;
// showAlert shows text in the alert line for 10 s.
export function showAlert(text) {
  $("alert-text").textContent = text;
  $("alert").hidden = false;
  clearTimeout(alertTimer);
  alertTimer = setTimeout(() => { $("alert").hidden = true; }, 10000);
}
export const showError = (e) => showAlert(e instanceof ServerError ? e.describe() : String(e && e.message ? e.message : e));

// keepingFocus runs render and gives the focus back to the element with
// the same data-key, when render replaced the focused one.
export function keepingFocus(render) {
  const key = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.key;
  render();
  if (key && (!document.activeElement || document.activeElement.dataset.key !== key)) {
    const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}
