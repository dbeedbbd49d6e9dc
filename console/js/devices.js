// Devices: the list (search by name, serial or UDID; filters platform, enrolled, last seen,
// group; paged by the API) and a device's page: facts, groups, policies and their state here,
// the command queue (pending and history, results and error chains) and the actions — send a
// command, cancel one, clear the queue, push now, remove the device, allow re-enrollment.
import { h, clear, when, announce } from "./dom.js";
import { get, post, del, qs, ApiError } from "./api.js";
import {
  act, isViewer, quietly, confirmDialog, errorChain, statusBadge, pager, PLATFORM_NAMES, pageHead, showError,
} from "./ui.js";
import { commandForm } from "./command-form.js";

const PAGE = 20;
const HISTORY_PAGE = 50; // finished commands per page on a device's queue
const SEEN = [
  { id: "", label: "Any time" },
  { id: "1h", label: "In the last hour", after: 3600 },
  { id: "24h", label: "In the last 24 hours", after: 86400 },
  { id: "7d", label: "In the last 7 days", after: 7 * 86400 },
  { id: "stale", label: "Not in 7 days", before: 7 * 86400 },
];
const iso = (secondsAgo) => new Date(Date.now() - secondsAgo * 1000).toISOString().replace(/\.\d+Z$/, "Z");

// The device's MDM identity: when it expires, and where its renewal stands.
function identityText(d) {
  if (!d.identity_not_after) return "—";
  const left = Math.floor((Date.parse(d.identity_not_after) - Date.now()) / 86400000);
  const exp = left < 0 ? `expired ${when(d.identity_not_after)}` : `expires ${when(d.identity_not_after)} (${left} days)`;
  const ren = d.identity_renewal === "outstanding" ? `; renewal queued ${when(d.identity_renewal_queued_at)}`
    : d.identity_renewal === "renewed" ? `; renewed ${when(d.identity_renewed_at)}` : "";
  return exp + ren;
}

export const deviceName = (d) => d.device_name || d.serial_number || d.udid;

export async function deviceList(ctx) {
  const p = ctx.params;
  const state = {
    q: p.get("q") || "", platform: p.get("platform") || "", enrolled: p.get("enrolled") || "",
    seen: p.get("seen") || "", group: p.get("group") || "", offset: 0,
  };
  const search = h("input", { type: "search", id: "device-search", value: state.q, placeholder: "Name, serial number or UDID" });
  const platform = h("select", { id: "device-platform" }, h("option", { value: "" }, "All platforms"),
    Object.entries(PLATFORM_NAMES).filter(([k]) => k !== "unknown").map(([k, v]) => h("option", { value: k }, v)));
  const enrolled = h("select", { id: "device-enrolled" }, h("option", { value: "" }, "Enrolled or not"),
    h("option", { value: "true" }, "Enrolled"), h("option", { value: "false" }, "Not enrolled"));
  const seen = h("select", { id: "device-seen" }, SEEN.map((s) => h("option", { value: s.id }, s.label)));
  const group = h("select", { id: "device-group" }, h("option", { value: "" }, "Any group"));
  platform.value = state.platform;
  enrolled.value = state.enrolled;
  seen.value = state.seen;
  const groups = await get("/v1/device-groups").catch(() => ({ device_groups: [] }));
  for (const g of groups.device_groups || []) group.append(h("option", { value: g.name }, g.name));
  group.value = state.group;

  const tbody = h("tbody");
  const pg = pager(PAGE, (off) => { state.offset = off; quietly(load()); }, "device-count");
  let seq = 0;
  async function load() {
    const mine = ++seq;
    const s = SEEN.find((x) => x.id === state.seen) || SEEN[0];
    const j = await get(`/v1/devices${qs({
      q: state.q, platform: state.platform, enrolled: state.enrolled, group: state.group,
      seen_after: s.after ? iso(s.after) : "", seen_before: s.before ? iso(s.before) : "",
      limit: PAGE, offset: state.offset,
    })}`);
    if (mine !== seq) return;
    const list = j.devices || [];
    clear(tbody);
    if (!list.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No device matches.")));
    for (const d of list) {
      tbody.append(h("tr", { "data-udid": d.udid },
        h("th", { scope: "row" }, h("a", { href: `#/devices/${encodeURIComponent(d.udid)}`, class: "device-name" }, deviceName(d))),
        h("td", {}, d.serial_number || "—"),
        h("td", { class: "mono hide-phone" }, d.udid),
        h("td", {}, PLATFORM_NAMES[d.platform] || d.platform, d.os_version ? ` ${d.os_version}` : ""),
        h("td", { class: "hide-phone" }, d.removed_at ? "Removed" : d.enrolled ? "Enrolled" : "Not enrolled"),
        h("td", {}, when(d.last_seen)),
        h("td", { class: "hide-phone" }, (d.groups || []).join(", ") || "—")));
    }
    pg.update(state.offset, list.length, j.total ?? list.length);
  }
  let timer = null;
  const reload = () => { state.offset = 0; quietly(load()); };
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.q = search.value.trim(); reload(); }, 250);
  });
  for (const [el, k] of [[platform, "platform"], [enrolled, "enrolled"], [seen, "seen"], [group, "group"]]) {
    el.addEventListener("change", () => { state[k] = el.value; reload(); });
  }
  const lbl = (forId, text) => h("label", { for: forId, class: "sr-only" }, text);
  ctx.view("Devices",
    pageHead("Device Management › Devices", "Devices"),
    h("section", { class: "card" },
      h("div", { class: "toolbar", role: "search" },
        h("label", { for: "device-search" }, "Search"), search,
        lbl("device-platform", "Platform"), platform,
        lbl("device-enrolled", "Enrolled"), enrolled,
        lbl("device-seen", "Last seen"), seen,
        lbl("device-group", "Group"), group),
      h("div", { class: "table-wrap" },
        h("table", { class: "list", id: "device-table", "aria-describedby": "device-count" },
          h("caption", { class: "sr-only" }, "Devices"),
          h("thead", {}, h("tr", {}, ["Name", "Serial", "UDID", "Platform", "Enrollment", "Last seen", "Groups"]
            .map((c, i) => h("th", { scope: "col", class: [2, 4, 6].includes(i) ? "hide-phone" : null }, c)))),
          tbody)),
      pg.el));
  await load();
  return () => clearTimeout(timer);
}

// The queue of one device: pending (cancel) and history with results and error chains.
function queueSection(udid, onChange) {
  const pending = h("tbody");
  const history = h("tbody");
  const count = h("p", { class: "counts", id: "queue-count", "aria-live": "polite" });
  const clearBtn = act(h("button", { type: "button", class: "danger", id: "clear-queue" }, "Clear queue"), "clear the queue");
  const details = new Map(); // uuid -> detail JSON (finished results do not change)
  let list = [];
  clearBtn.addEventListener("click", () => {
    const n = list.filter((c) => c.active).length;
    confirmDialog({
      id: "confirm-clear", opener: clearBtn, title: "Clear the queue?", confirm: "Cancel all",
      body: `The ${n} command${n === 1 ? "" : "s"} still queued for this device will be cancelled; the device will not receive them.`,
      run: async () => {
        const r = await del(`/v1/devices/${encodeURIComponent(udid)}/commands`);
        announce(`Cancelled ${r.cancelled} queued command${r.cancelled === 1 ? "" : "s"}.`);
        await onChange();
      },
    });
  });

  // One finished command: its result (Acknowledged) or error chain (Error), read on demand.
  function historyRow(c) {
    const resultCell = h("td", {});
    const row = h("tr", { "data-uuid": c.uuid, "data-status": c.status },
      h("th", { scope: "row" }, c.request_type || "—"),
      h("td", {}, statusBadge(c.status)),
      h("td", {}, when(c.result_at || c.created)),
      h("td", { class: "mono hide-phone" }, c.uuid),
      resultCell);
    if (/Error/.test(c.status)) {
      // The error chain, read once per command.
      detail(c.uuid).then((d) => resultCell.append(errorChain(d.error_chain) || ""), () => {});
    } else if (c.status === "Acknowledged") {
      const out = h("pre", { class: "preview result", hidden: true, tabindex: "0" });
      const b = h("button", { type: "button", class: "small", "aria-expanded": "false" }, "Result");
      b.addEventListener("click", async () => {
        const open = b.getAttribute("aria-expanded") !== "true";
        b.setAttribute("aria-expanded", open ? "true" : "false");
        if (open && !out.textContent) {
          try {
            const d = await detail(c.uuid);
            out.textContent = JSON.stringify(d.result, null, 2);
          } catch (e) { out.textContent = e.message; }
        }
        out.hidden = !open;
      });
      resultCell.append(b, out);
    }
    return row;
  }

  async function detail(uuid) {
    if (!details.has(uuid)) details.set(uuid, await get(`/v1/devices/${encodeURIComponent(udid)}/commands/${encodeURIComponent(uuid)}`));
    return details.get(uuid);
  }

  // The history comes a page at a time, newest first; "Older commands" fetches the next one.
  const base = `/v1/devices/${encodeURIComponent(udid)}/commands?all=true&limit=${HISTORY_PAGE}`;
  const olderBtn = h("button", { type: "button", class: "small", id: "queue-older", hidden: true }, "Older commands");
  let nextBefore = 0;
  let shown = 0;
  const counted = (queued) => {
    count.textContent = `${queued} queued · ${shown}${nextBefore ? "+" : ""} in history${nextBefore ? ` (the latest ${shown} shown)` : ""}`;
  };
  const morePage = (j) => {
    nextBefore = j.next_before || 0;
    olderBtn.hidden = !nextBefore;
  };
  olderBtn.addEventListener("click", async () => {
    olderBtn.disabled = true;
    try {
      const j = await get(`${base}&before=${nextBefore}`);
      const rows = (j.commands || []).filter((c) => !c.active);
      for (const c of rows) history.append(historyRow(c));
      shown += rows.length;
      morePage(j);
      counted(list.filter((c) => c.active).length);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) announce(e.message, "error");
    } finally {
      olderBtn.disabled = false;
    }
  });

  async function load() {
    const j = await get(base);
    list = j.commands || [];
    const act1 = list.filter((c) => c.active);
    const done = list.filter((c) => !c.active);
    shown = done.length;
    morePage(j);
    counted(act1.length);
    if (!isViewer()) clearBtn.disabled = !act1.length;
    clear(pending);
    if (!act1.length) pending.append(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "Nothing queued.")));
    for (const c of act1) {
      const cancel = act(h("button", { type: "button", class: "danger small", "aria-label": `Cancel ${c.request_type} ${c.uuid}` }, "Cancel"), "cancel commands");
      cancel.addEventListener("click", async () => {
        cancel.disabled = true;
        try {
          await del(`/v1/devices/${encodeURIComponent(udid)}/commands/${encodeURIComponent(c.uuid)}`);
          announce(`Cancelled ${c.request_type}.`);
          await onChange();
        } catch (e) {
          cancel.disabled = false;
          if (!(e instanceof ApiError && e.status === 401)) announce(e.message, "error");
        }
      });
      pending.append(h("tr", { "data-uuid": c.uuid, "data-status": c.status },
        h("th", { scope: "row" }, c.request_type || "—"),
        h("td", {}, statusBadge(c.status), c.notnow_count ? h("span", { class: "help" }, ` (NotNow ×${c.notnow_count})`) : null),
        h("td", {}, when(c.created)),
        h("td", { class: "mono hide-phone" }, c.uuid),
        h("td", {}, cancel)));
    }
    clear(history);
    if (!done.length) history.append(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No finished command yet.")));
    for (const c of done) history.append(historyRow(c));
    return act1.length;
  }

  const table = (id, caption, body, cols) => h("div", { class: "table-wrap" },
    h("table", { class: "list", id },
      h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: c === "UUID" ? "hide-phone" : null }, c)))),
      body));
  const el = h("section", { class: "card", "aria-labelledby": "queue-h" },
    h("div", { class: "section-head" }, h("h2", { id: "queue-h" }, "Command queue"), clearBtn),
    count,
    h("h3", {}, "Pending"),
    table("queue-pending", "Pending commands", pending, ["Command", "Status", "Queued", "UUID", ""]),
    h("h3", {}, "History"),
    table("queue-history", "Finished commands", history, ["Command", "Status", "When", "UUID", "Result"]),
    olderBtn);
  return { el, load };
}

// Declarative Device Management: the declarations Scepter gives the device now and what the
// device last reported of each (GET /v1/devices/{udid}/declarations), plus the reported ones
// it should no longer hold.
const KIND_NAMES = { activation: "Activation", asset: "Asset", configuration: "Configuration", management: "Management" };
function declarationsSection(udid) {
  const body = h("tbody");
  const summary = h("p", { class: "help", id: "declarations-summary", "aria-live": "polite" });
  const reasonsOf = (st) => (st && Array.isArray(st.reasons) && st.reasons.length
    ? h("ol", { class: "chain" }, st.reasons.map((r) => h("li", {},
      `${r.description || r.code || "reason"}${r.code && r.description ? ` (${r.code})` : ""}`)))
    : null);
  const stateCell = (st, current) => {
    if (!st) return h("td", { "data-valid": "none" }, h("span", { class: "ddm-state ddm-unknown" }, "not reported"));
    const valid = st.valid || "unknown";
    return h("td", { "data-valid": valid, "data-active": st.active ? "true" : "false" },
      h("span", { class: `ddm-state ddm-${st.active ? "active" : "inactive"}` }, st.active ? "active" : "inactive"),
      " · ",
      h("span", { class: `ddm-state ddm-${valid}` }, valid),
      current === false ? h("span", { class: "ddm-state ddm-syncing", "data-current": "false", title: "The device holds an older version (server token) of this declaration" }, " · older version") : null,
      reasonsOf(st));
  };
  const row = (d, st, stale) => h("tr", {
    "data-identifier": d.identifier, "data-kind": d.kind,
    "data-valid": st ? st.valid : "none", "data-stale": stale ? "true" : null,
  },
  h("th", { scope: "row", class: "mono" }, d.identifier),
  h("td", {}, stale ? h("span", { class: "ddm-state ddm-stale" }, "no longer assigned") : (d.type || "—")),
  h("td", { class: "hide-phone" }, KIND_NAMES[d.kind] || KIND_NAMES[String(d.kind).replace(/s$/, "")] || d.kind),
  stateCell(st, stale ? undefined : st ? st.current : undefined),
  h("td", {}, when(st && st.updated)));
  const el = h("section", { class: "card", "aria-labelledby": "decl-h", id: "declarations" },
    h("h2", { id: "decl-h" }, "Declarations"), summary,
    h("div", { class: "table-wrap" }, h("table", { class: "list", id: "device-declarations" },
      h("caption", { class: "sr-only" }, "Declarative Device Management declarations and their reported state"),
      h("thead", {}, h("tr", {}, ["Identifier", "Type", "Kind", "Reported state", "Last report"]
        .map((c, i) => h("th", { scope: "col", class: i === 2 ? "hide-phone" : null }, c)))),
      body)));
  async function load() {
    let j;
    try {
      j = await get(`/v1/devices/${encodeURIComponent(udid)}/declarations`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) { el.hidden = true; return; } // an older server
      if (e instanceof ApiError && e.status === 401) throw e;
      summary.textContent = `Declarations unavailable: ${e.message}`;
      return;
    }
    const decls = j.declarations || [];
    const stale = j.stale || [];
    const reported = decls.filter((d) => d.status).length;
    summary.textContent = j.ddm_capable
      ? `${decls.length} declaration${decls.length === 1 ? "" : "s"}, ${reported} reported by the device` +
        (stale.length ? `, ${stale.length} reported but no longer assigned` : "") +
        (j.declarations_token ? ` · DeclarationsToken ${j.declarations_token}` : "")
      : "This device gets profiles: Declarative Device Management needs iOS/iPadOS 17 or macOS 14 or later.";
    clear(body);
    if (!decls.length && !stale.length) {
      body.append(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No declaration for this device.")));
    }
    for (const d of decls) body.append(row(d, d.status, false));
    for (const s of stale) body.append(row(s, s, true));
  }
  return { el, load };
}

export async function deviceDetail(ctx, udid) {
  const enc = encodeURIComponent(udid);
  let d = await get(`/v1/devices/${enc}`);
  let alive = true;
  let timer = null;
  const queue = queueSection(udid, () => refresh());
  const decls = declarationsSection(udid);
  async function refresh() {
    clearTimeout(timer);
    const [pending] = await Promise.all([queue.load(), decls.load()]);
    // Follow the queue while commands wait (bounded by the page's life).
    if (alive && pending) timer = setTimeout(() => quietly(refresh()), 2000);
  }

  const facts = () => h("dl", { class: "facts", id: "device-facts" },
    h("dt", {}, "Name"), h("dd", {}, d.device_name || "—"),
    h("dt", {}, "Serial number"), h("dd", {}, d.serial_number || "—"),
    h("dt", {}, "UDID"), h("dd", { class: "mono" }, d.udid),
    h("dt", {}, "Platform"), h("dd", {}, PLATFORM_NAMES[d.platform] || d.platform),
    h("dt", {}, "Model"), h("dd", {}, [d.model_name, d.product_name || d.model].filter(Boolean).join(" · ") || "—"),
    h("dt", {}, "OS"), h("dd", {}, [d.os_version, d.build_version && `(${d.build_version})`].filter(Boolean).join(" ") || "—"),
    h("dt", {}, "Enrollment"), h("dd", { id: "device-enrollment" }, d.removed_at ? `Removed ${when(d.removed_at)}` : d.enrolled ? "Enrolled" : "Not enrolled"),
    h("dt", {}, "Re-enrollment"), h("dd", { id: "device-reenroll" }, d.reenroll_until && Date.parse(d.reenroll_until) > Date.now() ? `Allowed until ${when(d.reenroll_until)}` : "Not allowed"),
    h("dt", {}, "Push token"), h("dd", {}, d.push_token_valid ? "Valid" : "None or invalid"),
    h("dt", {}, "Last seen"), h("dd", {}, when(d.last_seen)),
    h("dt", {}, "Enrolled since"), h("dd", {}, when(d.authenticated_at || d.created)),
    h("dt", {}, "Certificates"), h("dd", {}, String((d.certificates || []).length)),
    h("dt", {}, "MDM identity"), h("dd", { id: "device-identity" }, identityText(d)),
    h("dt", {}, "Setup Assistant"), h("dd", { id: "device-awaiting" }, d.awaiting_configuration
      ? "Awaiting configuration: send DeviceConfigured to let it finish" : "—"));
  const factsCard = h("section", { class: "card", "aria-labelledby": "facts-h" }, h("h2", { id: "facts-h" }, "Facts"), facts());
  const groupsEl = h("ul", { class: "chips", id: "device-groups" }, (d.groups || []).length
    ? d.groups.map((g) => h("li", {}, h("a", { href: `#/groups/${encodeURIComponent(g)}` }, g)))
    : h("li", { class: "help" }, "In no group."));
  const policies = d.policies || [];
  const polBody = h("tbody", {}, policies.length ? policies.map((p) => h("tr", { "data-policy-id": p.id },
    h("th", { scope: "row" }, h("a", { href: `#/policies/${p.id}` }, p.name)),
    h("td", {}, PLATFORM_NAMES[p.platform] || p.platform),
    h("td", {}, p.state ? statusBadge(p.state) : "not queued yet", p.targeted ? "" : h("span", { class: "help" }, " (no longer targeted)"))))
    : h("tr", {}, h("td", { colspan: 3, class: "empty" }, "No policy targets this device.")));

  // Actions.
  const pushBtn = act(h("button", { type: "button", id: "push-now" }, "Push now"), "push devices");
  pushBtn.addEventListener("click", async () => {
    try {
      await post("/v1/push", { devices: [udid] });
      announce(`Push sent to ${deviceName(d)}.`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) announce(`Push failed: ${e.message}`, "error");
    }
  });
  const reenrollBtn = act(h("button", { type: "button", id: "allow-reenroll" }, "Allow re-enrollment"), "allow re-enrollment");
  reenrollBtn.addEventListener("click", () => {
    const hours = h("select", { id: "reenroll-for" }, [["1h", "1 hour"], ["24h", "24 hours"], ["7d", "7 days"]]
      .map(([v, l]) => h("option", { value: v }, l)));
    confirmDialog({
      id: "confirm-reenroll", opener: reenrollBtn, danger: false, title: "Allow re-enrollment?", confirm: "Allow",
      body: [
        "A device enrolled with one identity is refused when it comes back with another (a wiped Mac enrolling again). This opens a window in which a new identity may replace the bound one; it closes with the first re-enrollment.",
        h("div", { class: "field" }, h("label", { for: "reenroll-for" }, "For"), hours)],
      run: async () => {
        const r = await post(`/v1/devices/${enc}/reenroll`, { for: hours.value });
        announce(`Re-enrollment allowed until ${when(r.reenroll_until)}.`);
        d = await get(`/v1/devices/${enc}`);
        factsCard.replaceChild(facts(), factsCard.querySelector("dl"));
      },
    });
  });
  const removeBtn = act(h("button", { type: "button", class: "danger", id: "remove-device" }, "Remove device"), "remove devices");
  removeBtn.addEventListener("click", () => confirmDialog({
    id: "confirm-remove", opener: removeBtn, title: `Remove ${deviceName(d)}?`, confirm: "Remove device",
    body: "Its identity certificates are revoked, every queued command is cancelled and its push tokens are wiped: the device can no longer talk to Scepter until it enrolls again. Its history stays.",
    run: async () => {
      const r = await del(`/v1/devices/${enc}`);
      announce(`Removed ${deviceName(d)}: ${r.certificates_revoked} certificate(s) revoked, ${r.commands_cancelled} command(s) cancelled.`);
      d = await get(`/v1/devices/${enc}`);
      factsCard.replaceChild(facts(), factsCard.querySelector("dl"));
      await refresh();
    },
  }));

  // Send a command.
  const cf = commandForm("cmd");
  const sendErr = h("p", { class: "field-error", hidden: true, role: "alert", id: "send-error" });
  const sendBtn = act(h("button", { type: "submit", class: "primary", id: "send-command" }, "Send command"), "send commands");
  const sendForm = h("form", { class: "card", "aria-labelledby": "send-h", novalidate: true },
    h("h2", { id: "send-h" }, "Send a command"), cf.el, sendErr, h("div", { class: "actions" }, sendBtn));
  sendForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    cf.clearErrors();
    sendErr.hidden = true;
    sendBtn.disabled = true;
    try {
      const body = await cf.read();
      const r = await post(`/v1/devices/${enc}/commands`, body);
      announce(`Queued ${r.request_type}${r.pushed ? " and pushed" : ""}.`);
      await refresh();
    } catch (x) {
      if (x instanceof ApiError && x.status === 401) return;
      const f = cf.fieldFor(x.field);
      if (f) { f.set(x.message); f.input.focus(); } else showError(x, {}, sendErr);
    } finally {
      sendBtn.disabled = false;
    }
  });

  ctx.view(deviceName(d),
    pageHead(h("span", {}, h("a", { href: "#/devices" }, "Devices"), " › ", PLATFORM_NAMES[d.platform] || d.platform),
      h("span", { id: "device-title" }, deviceName(d)), pushBtn, reenrollBtn, removeBtn),
    h("div", { class: "columns" },
      factsCard,
      h("div", {},
        h("section", { class: "card", "aria-labelledby": "groups-h" }, h("h2", { id: "groups-h" }, "Groups"), groupsEl),
        h("section", { class: "card", "aria-labelledby": "pol-h" }, h("h2", { id: "pol-h" }, "Policies"),
          h("div", { class: "table-wrap" }, h("table", { class: "list", id: "device-policies" },
            h("caption", { class: "sr-only" }, "Policies and their state on this device"),
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Policy"), h("th", { scope: "col" }, "Platform"), h("th", { scope: "col" }, "State"))),
            polBody))))),
    decls.el,
    queue.el,
    sendForm);
  await refresh();
  return () => { alive = false; clearTimeout(timer); };
}
