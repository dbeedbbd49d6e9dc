// Policy Management: the All / Mac / iOS list (search, sort, paged by the API), the (+) New
// Policy panel, and a policy's page (per-device status, edit, delete, .mobileconfig preview).
import { h, clear, when, tabs, announce, uid } from "./dom.js";
import { get, del, qs, ApiError } from "./api.js";
import { act } from "./ui.js";

export const PLATFORMS = { macos: "Mac", ios: "iOS" };
const PAGE = 20;

// A load started by a click or a timer: a 401 is handled by the sign-in page, anything
// else is announced.
export function quietly(promise) {
  return promise.catch((e) => {
    if (!(e instanceof ApiError && e.status === 401)) announce(e.message, "error");
  });
}

function targetsText(t) {
  if (!t) return "none";
  const groups = t.groups || t.device_groups || [];
  const devices = t.devices || [];
  const parts = [];
  if (groups.length) parts.push(`${groups.length} group${groups.length === 1 ? "" : "s"} (${groups.join(", ")})`);
  if (devices.length) parts.push(`${devices.length} device${devices.length === 1 ? "" : "s"}`);
  return parts.length ? parts.join(", ") : "none";
}

// The (+) New Policy panel: Mac and iOS tabs, each listing the policy types it offers.
function newPolicyPanel(ctx, opener) {
  const titleId = uid("dlg");
  const typeList = (platform) => h("ul", { class: "type-list" },
    h("li", { class: "type-row" },
      h("div", {},
        h("strong", {}, "SCEP Profiles"),
        h("p", { class: "help" }, `Have each ${platform === "ios" ? "iPhone and iPad" : "Mac"} get a certificate from your SCEP server.`)),
      h("button", {
        type: "button", class: "primary", "aria-label": `configure SCEP Profiles for ${PLATFORMS[platform]}`,
        "data-policy-type": "scep", onclick: () => { dlg.close(); ctx.navigate(`#/policies/new/${platform}`); },
      }, "configure")));
  const t = tabs("Platform", [
    { id: "macos", label: "Mac", panel: typeList("macos") },
    { id: "ios", label: "iOS", panel: typeList("ios") },
  ]);
  const dlg = h("dialog", { class: "panel", "aria-labelledby": titleId, id: "new-policy-panel" },
    h("div", { class: "panel-head" },
      h("h2", { id: titleId }, "New Policy"),
      h("button", { type: "button", class: "ghost", "aria-label": "Close", onclick: () => dlg.close() }, "×")),
    t.el);
  dlg.addEventListener("close", () => { dlg.remove(); opener.focus(); });
  document.body.append(dlg);
  dlg.showModal();
  dlg.querySelector('[role="tab"][aria-selected="true"]').focus();
}

export async function policyList(ctx) {
  const p = ctx.params;
  const state = {
    q: p.get("q") || "", sort: p.get("sort") || "name", order: p.get("order") || "asc",
    offset: Number(p.get("offset") || 0), platform: p.get("platform") || "",
  };
  const tbody = h("tbody");
  const summary = h("p", { class: "help", id: "policy-count", "aria-live": "polite" });
  const prev = h("button", { type: "button", onclick: () => { state.offset = Math.max(0, state.offset - PAGE); quietly(load()); } }, "Previous");
  const next = h("button", { type: "button", onclick: () => { state.offset += PAGE; quietly(load()); } }, "Next");
  const search = h("input", { type: "search", id: "policy-search", value: state.q, placeholder: "Name or notes" });
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = search.value; state.offset = 0; quietly(load()); }, 250);
  });
  const sortButton = (key, label) => h("button", {
    type: "button", class: "sort", "data-sort": key,
    onclick: () => {
      if (state.sort === key) state.order = state.order === "asc" ? "desc" : "asc";
      else { state.sort = key; state.order = key === "updated" ? "desc" : "asc"; }
      state.offset = 0;
      quietly(load());
    },
  }, label);
  const ths = {
    name: h("th", { scope: "col" }, sortButton("name", "Name")),
    platform: h("th", { scope: "col" }, sortButton("platform", "Platform")),
    updated: h("th", { scope: "col" }, sortButton("updated", "Updated")),
  };
  const table = h("table", { class: "list", "aria-describedby": "policy-count" },
    h("caption", { class: "sr-only" }, "Policies"),
    h("thead", {}, h("tr", {}, ths.name, ths.platform, h("th", { scope: "col" }, "Targets"),
      h("th", { scope: "col" }, "Installed"), h("th", { scope: "col" }, "Pending"),
      h("th", { scope: "col" }, "Failed"), ths.updated)),
    tbody);
  const plus = act(h("button", {
    type: "button", class: "fab", id: "new-policy", "aria-label": "New policy", "aria-haspopup": "dialog",
    onclick: () => newPolicyPanel(ctx, plus),
  }, "+"), "create policies");
  const listPanel = () => h("div", {},
    h("div", { class: "toolbar" },
      h("label", { for: "policy-search" }, "Search"), search, plus),
    h("div", { class: "table-wrap" }, table),
    h("div", { class: "pager" }, prev, summary, next));
  const panel = listPanel();
  let t = null;
  t = tabs("Policies by platform", [
    { id: "", label: "All", panel },
    { id: "macos", label: "Mac", panel: h("div") },
    { id: "ios", label: "iOS", panel: h("div") },
  ], (id) => {
    // One list, filtered by the tab: move it into the selected panel.
    if (state.platform !== id) { state.platform = id; state.offset = 0; }
    const target = t ? t.el.querySelector(`[role="tabpanel"]:not([hidden])`) : null;
    if (target && !target.contains(panel)) target.append(panel);
    if (t) quietly(load());
  });

  let seq = 0;
  async function load() {
    const mine = ++seq;
    for (const [k, th] of Object.entries(ths)) {
      th.setAttribute("aria-sort", state.sort === k ? (state.order === "asc" ? "ascending" : "descending") : "none");
    }
    const j = await get(`/v1/policies${qs({
      q: state.q, sort: state.sort, order: state.order, limit: PAGE, offset: state.offset, platform: state.platform,
    })}`);
    if (mine !== seq) return;
    const list = j.policies || [];
    const total = j.total ?? list.length;
    clear(tbody);
    if (!list.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" },
        state.q ? "No policy matches the search." : "No policies yet. Use + to add one.")));
    }
    for (const pol of list) {
      const c = pol.counts || {};
      tbody.append(h("tr", { "data-policy-id": pol.id },
        h("th", { scope: "row" }, h("a", { href: `#/policies/${pol.id}`, class: "policy-name" }, pol.name),
          pol.ddm ? h("span", { class: "badge", "data-ddm": "", title: "Delivered declaratively where devices support it" }, "DDM") : null),
        h("td", {}, PLATFORMS[pol.platform] || pol.platform),
        h("td", {}, targetsText(pol.targets)),
        h("td", { class: "num" }, c.installed ?? 0),
        h("td", { class: "num" }, c.pending ?? 0),
        h("td", { class: "num" }, c.failed ?? 0),
        h("td", {}, when(pol.updated))));
    }
    const from = total ? state.offset + 1 : 0;
    summary.textContent = `${from}–${state.offset + list.length} of ${total}`;
    prev.disabled = state.offset === 0;
    next.disabled = state.offset + list.length >= total;
  }

  ctx.view("Policy Management",
    h("div", { class: "page-head" },
      h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, "Device Management › Policy Management"),
      h("h1", {}, "Policy Management")),
    t.el);
  t.select(state.platform, false);
  return () => clearTimeout(timer);
}

function errorChain(e) {
  if (!e) return null;
  const chain = Array.isArray(e) ? e : e.chain || e.error_chain || [e];
  return h("ol", { class: "chain" }, chain.map((x) => h("li", {},
    typeof x === "string" ? x
      : `${x.LocalizedDescription || x.USEnglishDescription || x.description || x.message || "error"}` +
        (x.ErrorDomain || x.domain ? ` (${x.ErrorDomain || x.domain} ${x.ErrorCode ?? x.code ?? ""})` : ""))));
}

// Why the server keeps a "ddm" policy a profile on every device (mdm/ddm.c ddm_policy), or null.
export function ddmIgnored(pol) {
  const why = [];
  if ((pol.scep || {}).keychain === "user") why.push("user keychain");
  const l = pol.linked || {};
  const linked = [["wifi", "Wi-Fi"], ["ethernet", "Ethernet"], ["vpn", "VPN"]].filter(([k]) => l[k]).map(([, n]) => n);
  if (linked.length) why.push(`linked ${linked.join(", ")} payloads`);
  return why.length ? why.join(" and ") : null;
}

function deliveryText(pol) {
  if (!pol.ddm) return "Profile (InstallProfile) on every device";
  const ignored = ddmIgnored(pol);
  if (ignored) return `Profile on every device: DDM is on but has no effect (${ignored})`;
  return pol.platform === "macos"
    ? "Declarative (DDM) on macOS 14 or later; profile on older Macs"
    : "Declarative (DDM) on iOS/iPadOS 17 or later; profile on older iPhones and iPads";
}

// "2 via DDM: 1 active, 1 syncing · 1 via profile: 1 installed" from the reply's by_delivery.
function deliveryCounts(b) {
  if (!b || !b.ddm || !b.profile) return "";
  const list = (o, keys) => keys.filter((k) => o[k]).map((k) => `${o[k]} ${k}`).join(", ") || "none yet";
  const parts = [];
  if (b.ddm.devices) parts.push(`${b.ddm.devices} via DDM: ${list(b.ddm, ["active", "inactive", "invalid", "unknown", "syncing"])}`);
  if (b.profile.devices) parts.push(`${b.profile.devices} via profile: ${list(b.profile, ["installed", "pending", "failed"])}`);
  return parts.join(" · ");
}

// A device's reported declaration state: the word, and the reasons of invalid declarations.
const DDM_WORDS = {
  active: "active", inactive: "inactive", invalid: "invalid", unknown: "not reported",
  syncing: "syncing",
};
function ddmCell(r) {
  if (r.delivery !== "ddm") return h("td", { "data-delivery": "profile" }, "Profile");
  const d = r.ddm || {};
  const state = d.syncing ? "syncing" : d.error ? "unknown" : d.state || "unknown";
  const reasons = [];
  for (const x of d.declarations || []) {
    for (const why of x.reasons || []) {
      const short = String(x.identifier || "").split(".").pop();
      reasons.push(`${short}: ${why.description || why.code || "reason"}${why.code && why.description ? ` (${why.code})` : ""}`);
    }
  }
  const title = d.syncing ? "The device does not hold this policy's current declarations yet"
    : d.not_rendered ? `Not rendered for this device: ${d.not_rendered}` : null;
  return h("td", { "data-delivery": "ddm" }, "DDM ",
    h("span", { class: `ddm-state ddm-${state}`, "data-ddm-state": state, title }, DDM_WORDS[state] || state),
    d.not_rendered ? h("p", { class: "help" }, `Not rendered: ${d.not_rendered}`) : null,
    reasons.length ? h("ol", { class: "chain ddm-reasons" }, reasons.map((t) => h("li", {}, t))) : null);
}

// Rows of /v1/policies/{id}/status in either shape: {devices: [...]} or by state.
function statusRows(j) {
  if (Array.isArray(j.devices)) return j.devices;
  const rows = [];
  for (const s of ["installed", "pending", "failed", "removed"]) {
    for (const d of j[s] || []) rows.push({ ...d, udid: d.udid || d.device, state: d.state || s, error: d.error || d.error_chain });
  }
  return rows;
}

export async function policyDetail(ctx, id) {
  const pol = await get(`/v1/policies/${encodeURIComponent(id)}`);
  const tbody = h("tbody");
  const counts = h("p", { class: "counts", id: "status-counts", "aria-live": "polite" });
  const dcounts = h("p", { class: "help", id: "delivery-counts", "aria-live": "polite", hidden: true });
  const stateFilter = h("select", { id: "status-state" },
    h("option", { value: "" }, "All states"), h("option", { value: "installed" }, "Installed"),
    h("option", { value: "pending" }, "Pending"), h("option", { value: "failed" }, "Failed"));
  const previewDevice = h("select", { id: "preview-device" });
  const previewOut = h("pre", { id: "preview-output", class: "preview", tabindex: "0", hidden: true, "aria-label": "Rendered .mobileconfig" });
  const previewErr = h("p", { class: "field-error", id: "preview-device-error", hidden: true });
  let offset = 0;
  let timer = null;
  let alive = true;
  const prev = h("button", { type: "button", onclick: () => { offset = Math.max(0, offset - PAGE); quietly(load()); } }, "Previous");
  const next = h("button", { type: "button", onclick: () => { offset += PAGE; quietly(load()); } }, "Next");
  const pageInfo = h("span", { class: "help" });
  stateFilter.addEventListener("change", () => { offset = 0; quietly(load()); });

  async function load() {
    clearTimeout(timer);
    let j;
    try {
      j = await get(`/v1/policies/${encodeURIComponent(id)}/status${qs({ state: stateFilter.value, limit: PAGE, offset })}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      counts.textContent = `Status unavailable: ${e.message}`;
      return;
    }
    if (!alive) return;
    const rows = statusRows(j);
    const c = j.counts || rows.reduce((a, r) => { a[r.state] = (a[r.state] || 0) + 1; return a; }, {});
    counts.textContent = `${c.installed || 0} installed · ${c.pending || 0} pending · ${c.failed || 0} failed`;
    dcounts.textContent = deliveryCounts(j.by_delivery);
    dcounts.hidden = !(pol.ddm || (j.by_delivery && j.by_delivery.ddm && j.by_delivery.ddm.devices)) || !dcounts.textContent;
    clear(tbody);
    if (!rows.length) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No targeted device of this platform yet.")));
    const known = new Set(Array.from(previewDevice.options, (o) => o.value));
    for (const r of rows) {
      const label = r.name || r.device_name || r.udid;
      tbody.append(h("tr", { "data-udid": r.udid, "data-state": r.state, "data-delivery": r.delivery || "profile" },
        h("th", { scope: "row" }, h("a", { href: `#/devices/${encodeURIComponent(r.udid)}` }, label)),
        h("td", {}, r.serial || r.serial_number || "—"),
        h("td", { class: "mono" }, r.udid),
        h("td", {}, h("span", {
          class: `state state-${r.state}`,
          title: r.delivery === "ddm" ? "The state of the DeclarativeManagement command that told the device to sync" : null,
        }, r.state), errorChain(r.error)),
        ddmCell(r),
        h("td", {}, when(r.updated))));
      if (!known.has(r.udid)) {
        previewDevice.append(h("option", { value: r.udid }, `${label}${r.serial || r.serial_number ? ` (${r.serial || r.serial_number})` : ""}`));
        known.add(r.udid);
      }
    }
    const total = j.total ?? rows.length;
    pageInfo.textContent = `${total ? offset + 1 : 0}–${offset + rows.length} of ${total}`;
    prev.disabled = offset === 0;
    next.disabled = offset + rows.length >= total;
    // Follow the devices while some are pending (bounded by the page's life); DDM devices that
    // have not caught up yet more slowly (one may stay offline, and each status request
    // renders every DDM device's declarations).
    if (rows.some((r) => r.state === "pending" || r.state === "removing")) timer = setTimeout(() => quietly(load()), 2000);
    else if (rows.some((r) => r.ddm && r.ddm.syncing)) timer = setTimeout(() => quietly(load()), 10000);
  }

  async function preview() {
    previewErr.hidden = true;
    if (!previewDevice.value) {
      previewErr.textContent = "Choose a device.";
      previewErr.hidden = false;
      return;
    }
    try {
      const text = await get(`/v1/policies/${encodeURIComponent(id)}/preview${qs({ device: previewDevice.value })}`,
        { accept: "application/x-apple-aspen-config" });
      previewOut.textContent = typeof text === "string" ? text : JSON.stringify(text, null, 2);
      previewOut.hidden = false;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      previewErr.textContent = e.message;
      previewErr.hidden = false;
    }
  }

  const delButton = act(h("button", { type: "button", class: "danger", id: "delete-policy", onclick: () => quietly(confirmDelete()) }, "Delete"), "delete policies");
  async function confirmDelete() {
    const n = (await get(`/v1/policies/${encodeURIComponent(id)}/status`).then(statusRows).catch(() => []))
      .filter((r) => r.state === "installed" || r.state === "pending").length;
    const titleId = uid("dlg");
    const err = h("p", { class: "field-error", hidden: true, role: "alert" });
    const dlg = h("dialog", { class: "panel", role: "alertdialog", "aria-labelledby": titleId, id: "confirm-delete" },
      h("h2", { id: titleId }, `Delete “${pol.name}”?`),
      h("p", { id: "delete-consequence" },
        `Scepter queues a RemoveProfile command for the ${n} device${n === 1 ? "" : "s"} that ` +
        "have or are getting this policy's profile: their SCEP certificate and its profile are removed " +
        "from each device. This cannot be undone."),
      err,
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"),
        h("button", {
          type: "button", class: "danger", onclick: async () => {
            try {
              await del(`/v1/policies/${encodeURIComponent(id)}`);
              dlg.close();
              announce(`Deleted ${pol.name}; RemoveProfile queued for ${n} device${n === 1 ? "" : "s"}.`);
              ctx.navigate("#/policies");
            } catch (e) {
              err.textContent = e.message;
              err.hidden = false;
            }
          },
        }, "Delete policy")));
    dlg.addEventListener("close", () => { dlg.remove(); delButton.focus(); });
    document.body.append(dlg);
    dlg.showModal();
    dlg.querySelector("button").focus();
  }

  const scep = pol.scep || {};
  const t = pol.targets || {};
  const dl = h("dl", { class: "facts" },
    h("dt", {}, "Platform"), h("dd", {}, PLATFORMS[pol.platform] || pol.platform),
    h("dt", {}, "Notes"), h("dd", {}, pol.notes || "—"),
    h("dt", {}, "SCEP URL"), h("dd", { class: "mono" }, scep.url || "—"),
    h("dt", {}, "Subject"), h("dd", { class: "mono" }, scep.subject || "—"),
    h("dt", {}, "Key size"), h("dd", {}, scep.key_size || "—"),
    h("dt", {}, "Delivery"), h("dd", { id: "policy-delivery", "data-ddm": pol.ddm ? "true" : "false" }, deliveryText(pol)),
    h("dt", {}, "Device groups"), h("dd", {}, (t.groups || t.device_groups || []).join(", ") || "none"),
    h("dt", {}, "Devices"), h("dd", {}, (t.devices || []).length ? `${t.devices.length} selected` : "none"),
    h("dt", {}, "Updated"), h("dd", {}, when(pol.updated)));
  ctx.view(pol.name,
    h("div", { class: "page-head" },
      h("nav", { "aria-label": "Breadcrumb", class: "crumbs" },
        h("a", { href: "#/policies" }, "Policy Management"), " › ", PLATFORMS[pol.platform] || "", " SCEP Profiles"),
      h("h1", { id: "policy-title" }, pol.name),
      h("div", { class: "actions" },
        act(h("a", { class: "button", href: `#/policies/${pol.id}/edit`, id: "edit-policy" }, "Edit"), "edit policies"), delButton)),
    h("section", { class: "card", "aria-labelledby": "facts-h" }, h("h2", { id: "facts-h" }, "Settings"), dl),
    h("section", { class: "card", "aria-labelledby": "status-h" },
      h("h2", { id: "status-h" }, "Devices"), counts, dcounts,
      h("div", { class: "toolbar" }, h("label", { for: "status-state" }, "State"), stateFilter),
      h("div", { class: "table-wrap" },
        h("table", { class: "list", id: "status-table" },
          h("caption", { class: "sr-only" }, "Per-device status"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Device"), h("th", { scope: "col" }, "Serial"),
            h("th", { scope: "col" }, "UDID"), h("th", { scope: "col" }, "State"),
            h("th", { scope: "col", title: "How the policy reaches the device, and for DDM the state it reported" }, "Delivery"),
            h("th", { scope: "col" }, "Updated"))),
          tbody)),
      h("div", { class: "pager" }, prev, pageInfo, next)),
    h("section", { class: "card", "aria-labelledby": "preview-h" },
      h("h2", { id: "preview-h" }, "Preview"),
      h("p", { class: "help" }, "The .mobileconfig one device would receive, variables resolved."),
      h("div", { class: "toolbar" },
        h("label", { for: "preview-device" }, "Device"), previewDevice,
        h("button", { type: "button", id: "preview-button", onclick: preview }, "Preview .mobileconfig")),
      previewErr, previewOut));
  await load();
  return () => { alive = false; clearTimeout(timer); };
}
