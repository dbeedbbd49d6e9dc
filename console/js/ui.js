// What the fleet pages share: the signed-in actor and its role (a viewer gets every action
// disabled, with a tooltip saying why; the API refuses it anyway), confirmation dialogs,
// field errors from the API's {"error", "field"}, error chains and small widgets.
import { h, uid, announce } from "./dom.js";
import { get, ApiError } from "./api.js";

let actor = { type: "api_key", name: null, role: "admin" };
let rolesKnown = false; // the server names the actor's role (it has operator accounts)
const probes = new Map(); // GET path -> Promise<HTTP status>
const RANK = { viewer: 0, operator: 1, admin: 2 };

// The session's actor (POST /v1/sessions, GET /v1/sessions/current).  A server without
// operator accounts sends none: its API keys can do everything.
export function setActor(session) {
  const a = session && session.actor;
  rolesKnown = !!(a && typeof a === "object" && a.role);
  actor = rolesKnown
    ? { type: a.type || "api_key", name: a.name || null, role: a.role }
    : { type: "api_key", name: null, role: "admin" };
  probes.clear();
}
export const currentActor = () => actor;
export const serverHasRoles = () => rolesKnown;
export const isViewer = () => actor.role === "viewer";
export const isAdmin = () => actor.role === "admin";

// Mark an element as an action needing role `need` (operator by default): disabled, with a
// tooltip saying why, for a role below it ("viewers cannot <verb>").  The API refuses anyway.
export function act(el, verb, need = "operator") {
  el.dataset.action = verb;
  if ((RANK[actor.role] ?? 0) < RANK[need]) {
    el.disabled = true;
    el.setAttribute("aria-disabled", "true");
    el.title = actor.role === "viewer" ? `viewers cannot ${verb}` : `only ${need}s can ${verb}`;
    if (el.tagName === "A") {
      el.removeAttribute("href");
      el.classList.add("disabled");
    }
  }
  return el;
}

// The HTTP status of a GET (200, or 404 for a route this server lacks, 403 for one the role
// may not read).  Cached per session.
export function probe(path) {
  if (!probes.has(path)) {
    probes.set(path, get(path).then(() => 200, (e) => (e instanceof ApiError ? e.status : 0)));
  }
  return probes.get(path);
}
export const serverHas = (path) => probe(path).then((st) => st !== 404);

// A load started by a click or a timer: a 401 goes to the sign-in page, the rest is announced.
export function quietly(promise) {
  return promise.catch((e) => {
    if (!(e instanceof ApiError && e.status === 401)) announce(e.message, "error");
  });
}

// A field and its error line: {wrap, input, error, set(msg), clear()}.
export function field(label, input, help) {
  const id = input.id || uid("f");
  input.id = id;
  const err = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const helpEl = help ? h("p", { class: "help", id: `${id}-help` }, help) : null;
  input.setAttribute("aria-describedby", [helpEl ? `${id}-help` : null, `${id}-error`].filter(Boolean).join(" "));
  const wrap = h("div", { class: "field" }, h("label", { for: id }, label), input, helpEl, err);
  return {
    wrap, input, error: err,
    set(msg) { err.textContent = msg; err.hidden = false; input.setAttribute("aria-invalid", "true"); },
    clear() { err.hidden = true; err.textContent = ""; input.removeAttribute("aria-invalid"); },
  };
}

// Show an API error on the field it names (fields: {apiField: field()}), else in `fallback`.
export function showError(e, fields, fallback) {
  for (const f of Object.values(fields)) f.clear();
  if (fallback) fallback.hidden = true;
  const f = e instanceof ApiError && e.field ? fields[e.field] : null;
  if (f) {
    f.set(e.message);
    f.input.focus();
  } else if (fallback) {
    fallback.textContent = e.message;
    fallback.hidden = false;
  } else {
    announce(e.message, "error");
  }
}

// A modal confirmation.  run() does the work; its error is shown in the dialog.
export function confirmDialog({ id, title, body, confirm, danger = true, opener, run }) {
  const titleId = uid("dlg");
  const err = h("p", { class: "field-error", hidden: true, role: "alert" });
  const ok = h("button", { type: "button", class: danger ? "danger" : "primary", "data-confirm": "" }, confirm);
  const dlg = h("dialog", { class: "panel", role: "alertdialog", "aria-labelledby": titleId, id },
    h("h2", { id: titleId }, title),
    ...(Array.isArray(body) ? body : [body]).map((b) => (typeof b === "string" ? h("p", {}, b) : b)),
    err,
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"), ok));
  ok.addEventListener("click", async () => {
    ok.disabled = true;
    try {
      await run();
      dlg.close();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) { dlg.close(); return; }
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      ok.disabled = false;
    }
  });
  dlg.addEventListener("close", () => { dlg.remove(); if (opener && opener.isConnected) opener.focus(); });
  document.body.append(dlg);
  dlg.showModal();
  dlg.querySelector("button").focus();
  return dlg;
}

// An ErrorChain (Apple's array of {ErrorDomain, ErrorCode, LocalizedDescription}) as a list.
export function errorChain(chain) {
  if (!chain) return null;
  const list = Array.isArray(chain) ? chain : [chain];
  if (!list.length) return null;
  return h("ol", { class: "chain" }, list.map((x) => h("li", {},
    typeof x === "string" ? x
      : `${x.LocalizedDescription || x.USEnglishDescription || x.description || "error"}` +
        (x.ErrorDomain ? ` (${x.ErrorDomain} ${x.ErrorCode ?? ""})` : ""))));
}

// A command status as a coloured word.
export function statusBadge(status) {
  const s = String(status || "");
  const kind = /^(Acknowledged|installed)$/.test(s) ? "ok" : /Error|failed/.test(s) ? "err"
    : /cancel/.test(s) ? "muted" : "pending";
  return h("span", { class: `status status-${kind}`, "data-status": s }, s);
}

// A "Copy" button for a value.
export function copyButton(text, label = "Copy") {
  const b = h("button", { type: "button", class: "ghost small" }, label);
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      announce("Copied.");
    } catch {
      announce("Copy failed: select the text and copy it.", "error");
    }
  });
  return b;
}

// "1–20 of 57" pager: {el, update(offset, shown, total)}; onMove(newOffset).
export function pager(pageSize, onMove, id) {
  const info = h("span", { class: "help", id, "aria-live": "polite" });
  let offset = 0;
  const prev = h("button", { type: "button", onclick: () => onMove(Math.max(0, offset - pageSize)) }, "Previous");
  const next = h("button", { type: "button", onclick: () => onMove(offset + pageSize) }, "Next");
  return {
    el: h("div", { class: "pager" }, prev, info, next),
    update(off, shown, total) {
      offset = off;
      info.textContent = `${total ? off + 1 : 0}–${off + shown} of ${total}`;
      prev.disabled = off === 0;
      next.disabled = off + shown >= total;
    },
  };
}

export const PLATFORM_NAMES = {
  macos: "Mac", ios: "iOS", ipados: "iPadOS", tvos: "tvOS", watchos: "watchOS", visionos: "visionOS", unknown: "Unknown",
};

// A read file as base64 (without the data: prefix) or as text.
export function readFile(file, asText) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(asText ? r.result : String(r.result).replace(/^data:[^,]*,/, ""));
    r.onerror = () => reject(new Error(`cannot read ${file.name}`));
    if (asText) r.readAsText(file);
    else r.readAsDataURL(file);
  });
}

// Page header with breadcrumb.
export function pageHead(crumbs, title, ...actions) {
  return h("div", { class: "page-head" },
    h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, crumbs),
    h("h1", {}, title),
    actions.length ? h("div", { class: "actions" }, actions) : null);
}
