// Commands: the cross-device queue (recent commands, newest first, with their entries counted
// by state; open one to see each device's status and error chain) and sending one command to
// devices and groups (POST /v1/commands).  Followed every 2 s while entries are queued.
import { h, clear, when, announce } from "./dom.js";
import { get, post, qs, ApiError } from "./api.js";
import { act, quietly, errorChain, statusBadge, pager, PLATFORM_NAMES, pageHead, showError } from "./ui.js";
import { commandForm } from "./command-form.js";
import { deviceName } from "./devices.js";

const PAGE = 20;
const STATES = [["queued", "Queued"], ["notnow", "NotNow"], ["acknowledged", "Acknowledged"], ["error", "Error"], ["cancelled", "Cancelled"]];

function countsText(c) {
  return STATES.map(([k, l]) => `${c[k] || 0} ${l.toLowerCase()}`).join(" · ");
}

export async function commandsPage(ctx) {
  const state = { origin: ctx.params.get("origin") || "operator", type: "", offset: 0 };
  const totals = h("ul", { class: "count-chips", id: "command-totals" });
  const tbody = h("tbody");
  const open = new Set(); // expanded commands
  let alive = true;
  let timer = null;
  const origin = h("select", { id: "command-origin" },
    h("option", { value: "operator" }, "Sent by operators"), h("option", { value: "policy" }, "Queued by policies"),
    h("option", { value: "any" }, "All commands"));
  origin.value = state.origin;
  const type = h("input", { type: "search", id: "command-type", placeholder: "Request type, e.g. DeviceInformation", spellcheck: "false" });
  const pg = pager(PAGE, (off) => { state.offset = off; quietly(load()); }, "command-count");

  async function devicesOf(uuid, cell) {
    const j = await get(`/v1/commands/${encodeURIComponent(uuid)}`);
    const rows = (j.devices || []).map((d) => h("tr", { "data-udid": d.udid, "data-status": d.status },
      h("th", { scope: "row" }, h("a", { href: `#/devices/${encodeURIComponent(d.udid)}` }, deviceName(d))),
      h("td", {}, PLATFORM_NAMES[d.platform] || d.platform),
      h("td", {}, statusBadge(d.status), errorChain(d.error_chain)),
      h("td", {}, when(d.result_at))));
    clear(cell);
    cell.append(h("table", { class: "list inner", "aria-label": `Devices of ${j.request_type} ${uuid}` },
      h("thead", {}, h("tr", {}, ["Device", "Platform", "Status", "Result at"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No device.")))));
  }

  async function load() {
    clearTimeout(timer);
    const j = await get(`/v1/commands${qs({ origin: state.origin, request_type: state.type, limit: PAGE, offset: state.offset })}`);
    if (!alive) return;
    clear(totals);
    for (const [k, l] of STATES) totals.append(h("li", { "data-state": k }, h("strong", {}, String(j.counts[k] || 0)), ` ${l}`));
    clear(tbody);
    const list = j.commands || [];
    if (!list.length) tbody.append(h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No command yet.")));
    const waits = [];
    let pending = false; // entries still waiting for a device: follow them
    for (const c of list) {
      const k = c.counts;
      const detail = h("td", { colspan: 9 });
      const detailRow = h("tr", { class: "detail", hidden: !open.has(c.uuid), "data-detail": c.uuid }, detail);
      const toggle = h("button", { type: "button", class: "small", "aria-expanded": open.has(c.uuid) ? "true" : "false",
        "aria-label": `Devices of ${c.request_type} ${c.uuid}` }, "Devices");
      toggle.addEventListener("click", () => {
        const on = !open.has(c.uuid);
        if (on) open.add(c.uuid); else open.delete(c.uuid);
        toggle.setAttribute("aria-expanded", on ? "true" : "false");
        detailRow.hidden = !on;
        if (on) quietly(devicesOf(c.uuid, detail));
      });
      tbody.append(h("tr", { "data-uuid": c.uuid, "data-request-type": c.request_type },
        h("th", { scope: "row" }, c.request_type, c.policy_id ? h("span", { class: "help" }, " (", h("a", { href: `#/policies/${c.policy_id}` }, "policy"), ")") : null),
        h("td", {}, when(c.created)),
        h("td", { class: "num", "data-count": "targets" }, c.targets),
        ...STATES.map(([s]) => h("td", { class: `num count-${s}`, "data-count": s }, k[s] || 0)),
        h("td", {}, toggle)), detailRow);
      if (open.has(c.uuid)) waits.push(devicesOf(c.uuid, detail).catch(() => {}));
      if (k.queued || k.notnow) pending = true;
    }
    pg.update(state.offset, list.length, j.total ?? list.length);
    await Promise.all(waits);
    if (alive && pending) timer = setTimeout(() => quietly(load()), 2000);
  }
  origin.addEventListener("change", () => { state.origin = origin.value; state.offset = 0; quietly(load()); });
  let typing = null;
  type.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.type = type.value.trim(); state.offset = 0; quietly(load()); }, 300);
  });

  // Send one command to devices and groups.
  const groups = await get("/v1/device-groups").catch(() => ({ device_groups: [] }));
  const groupBoxes = (groups.device_groups || []).map((g) => {
    const cb = h("input", { type: "checkbox", value: g.name, id: `target-group-${g.id}`, "data-group": g.name });
    return { cb, el: h("label", { class: "check", for: cb.id }, cb, `${g.name} (${g.members})`) };
  });
  const chosen = new Map(); // udid -> device
  const chips = h("ul", { class: "chips", id: "target-devices" });
  const devSearch = h("input", { type: "search", id: "target-search", placeholder: "Name, serial number or UDID", autocomplete: "off" });
  const devResults = h("ul", { class: "plain results", id: "target-results" });
  function drawChips() {
    clear(chips);
    for (const [u, d] of chosen) {
      chips.append(h("li", { "data-udid": u }, deviceName(d), h("button", {
        type: "button", class: "ghost small", "aria-label": `Remove ${deviceName(d)}`,
        onclick: () => { chosen.delete(u); drawChips(); },
      }, "×")));
    }
  }
  let st = null;
  devSearch.addEventListener("input", () => {
    clearTimeout(st);
    st = setTimeout(() => quietly((async () => {
      const q = devSearch.value.trim();
      clear(devResults);
      if (!q) return;
      const j = await get(`/v1/devices${qs({ q, enrolled: "true", limit: 10 })}`);
      clear(devResults);
      for (const d of j.devices || []) {
        devResults.append(h("li", { "data-udid": d.udid }, h("button", {
          type: "button", class: "small", "aria-label": `Choose ${deviceName(d)}`,
          onclick: () => { chosen.set(d.udid, d); drawChips(); },
        }, "Choose"), ` ${deviceName(d)} `, h("span", { class: "help" }, d.serial_number || d.udid)));
      }
      if (!(j.devices || []).length) devResults.append(h("li", { class: "help" }, "No enrolled device matches."));
    })()), 250);
  });
  const cf = commandForm("bulk");
  const targetErr = h("p", { class: "field-error", id: "targets-error", hidden: true });
  const sendErr = h("p", { class: "field-error", hidden: true, role: "alert", id: "bulk-send-error" });
  const sendBtn = act(h("button", { type: "submit", class: "primary", id: "send-bulk" }, "Send to targets"), "send commands");
  const form = h("form", { class: "card", "aria-labelledby": "bulk-h", novalidate: true },
    h("h2", { id: "bulk-h" }, "Send a command"),
    h("fieldset", {}, h("legend", {}, "Device groups"),
      groupBoxes.length ? h("div", { class: "check-grid" }, groupBoxes.map((g) => g.el)) : h("p", { class: "help" }, "No group yet.")),
    h("div", { class: "field" }, h("label", { for: "target-search" }, "Devices"), devSearch, devResults, chips),
    targetErr, cf.el, sendErr, h("div", { class: "actions" }, sendBtn));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    cf.clearErrors();
    targetErr.hidden = true;
    sendErr.hidden = true;
    const device_groups = groupBoxes.filter((g) => g.cb.checked).map((g) => g.cb.value);
    const devices = [...chosen.keys()];
    if (!device_groups.length && !devices.length) {
      targetErr.textContent = "Choose at least one device or group.";
      targetErr.hidden = false;
      return;
    }
    sendBtn.disabled = true;
    try {
      const body = await cf.read();
      const r = await post("/v1/commands", { ...body, devices, device_groups });
      announce(`Queued ${r.request_type} for ${r.queued} device${r.queued === 1 ? "" : "s"}.`);
      state.origin = "operator";
      origin.value = "operator";
      state.offset = 0;
      open.add(r.uuid);
      await load();
    } catch (x) {
      if (x instanceof ApiError && x.status === 401) return;
      const f = cf.fieldFor(x.field);
      if (f) { f.set(x.message); f.input.focus(); } else if (x.field === "devices" || /^targets/.test(x.field || "")) {
        targetErr.textContent = x.message; targetErr.hidden = false;
      } else showError(x, {}, sendErr);
    } finally {
      sendBtn.disabled = false;
    }
  });

  ctx.view("Commands",
    pageHead("Device Management › Commands", "Commands"),
    h("section", { class: "card", "aria-labelledby": "queue-h" },
      h("h2", { id: "queue-h" }, "Recent commands"),
      h("p", { class: "help" }, "Entries across the whole queue, by state:"), totals,
      h("div", { class: "toolbar" },
        h("label", { for: "command-origin" }, "Show"), origin,
        h("label", { for: "command-type", class: "sr-only" }, "Request type"), type),
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "command-table", "aria-describedby": "command-count" },
        h("caption", { class: "sr-only" }, "Recent commands"),
        h("thead", {}, h("tr", {}, ["Command", "Created", "Devices", ...STATES.map(([, l]) => l), ""].map((c) => h("th", { scope: "col" }, c)))),
        tbody)),
      pg.el),
    form);
  await load();
  return () => { alive = false; clearTimeout(timer); clearTimeout(st); clearTimeout(typing); };
}

export { countsText };
