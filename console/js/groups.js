// Device Groups: the list with member counts and platform mix, create; a group's page: rename,
// delete, its members (remove; search devices to add) and the policies that target it.
import { h, clear, when, announce } from "./dom.js";
import { get, post, del, api, qs, ApiError } from "./api.js";
import { act, quietly, confirmDialog, field, showError, PLATFORM_NAMES, pageHead } from "./ui.js";
import { deviceName } from "./devices.js";

const mix = (m) => Object.entries(m || {}).map(([p, n]) => `${n} ${PLATFORM_NAMES[p] || p}`).join(", ") || "—";

export async function groupList(ctx) {
  const tbody = h("tbody");
  async function load() {
    const j = await get("/v1/device-groups");
    clear(tbody);
    const list = j.device_groups || [];
    if (!list.length) tbody.append(h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No device group yet.")));
    for (const g of list) {
      tbody.append(h("tr", { "data-group": g.name },
        h("th", { scope: "row" }, h("a", { href: `#/groups/${encodeURIComponent(g.name)}` }, g.name)),
        h("td", { class: "num" }, g.members),
        h("td", {}, mix(g.platforms || g.by_platform)),
        h("td", {}, when(g.created))));
    }
  }
  const name = field("Name", h("input", { type: "text", id: "group-name", maxlength: 128, autocomplete: "off" }));
  const formErr = h("p", { class: "field-error", hidden: true, role: "alert" });
  const create = act(h("button", { type: "submit", class: "primary", id: "create-group" }, "Create group"), "create groups");
  const form = h("form", { class: "card", "aria-labelledby": "new-group-h", novalidate: true },
    h("h2", { id: "new-group-h" }, "New group"), h("div", { class: "inline-form" }, name.wrap, create), formErr);
  if (create.disabled) name.input.disabled = true;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    name.clear();
    const v = name.input.value.trim();
    if (!v) { name.set("Enter a name for the group."); name.input.focus(); return; }
    try {
      await post("/v1/device-groups", { name: v });
      announce(`Created ${v}.`);
      ctx.navigate(`#/groups/${encodeURIComponent(v)}`);
    } catch (x) {
      if (!(x instanceof ApiError && x.status === 401)) showError(x, { name }, formErr);
    }
  });
  ctx.view("Device Groups",
    pageHead("Device Management › Device Groups", "Device Groups"),
    form,
    h("section", { class: "card" },
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "group-table" },
        h("caption", { class: "sr-only" }, "Device groups"),
        h("thead", {}, h("tr", {}, ["Name", "Members", "Platforms", "Created"].map((c) => h("th", { scope: "col" }, c)))),
        tbody))));
  await load();
  return null;
}

export async function groupDetail(ctx, name) {
  const enc = encodeURIComponent(name);
  const g = await get(`/v1/device-groups/${enc}`);
  const members = h("tbody");
  const memberCount = h("p", { class: "counts", id: "member-count", "aria-live": "polite" });
  const policiesEl = h("ul", { class: "plain", id: "group-policies" });

  async function loadMembers() {
    const j = await get(`/v1/devices${qs({ group: name, limit: 500 })}`);
    const list = j.devices || [];
    memberCount.textContent = `${j.total ?? list.length} member${(j.total ?? list.length) === 1 ? "" : "s"}`;
    clear(members);
    if (!list.length) members.append(h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No member yet. Search below to add devices.")));
    for (const d of list) {
      const rm = act(h("button", { type: "button", class: "small", "aria-label": `Remove ${deviceName(d)} from ${name}` }, "Remove"), "change groups");
      rm.addEventListener("click", async () => {
        rm.disabled = true;
        try {
          await api("DELETE", `/v1/device-groups/${enc}/members`, { devices: [d.udid] });
          announce(`Removed ${deviceName(d)} from ${name}.`);
          await loadMembers();
        } catch (e) {
          rm.disabled = false;
          if (!(e instanceof ApiError && e.status === 401)) announce(e.message, "error");
        }
      });
      members.append(h("tr", { "data-udid": d.udid },
        h("th", { scope: "row" }, h("a", { href: `#/devices/${encodeURIComponent(d.udid)}` }, deviceName(d))),
        h("td", {}, d.serial_number || "—"),
        h("td", {}, PLATFORM_NAMES[d.platform] || d.platform),
        h("td", {}, rm)));
    }
    return new Set(list.map((d) => d.udid));
  }

  // Add members: search devices.
  const search = h("input", { type: "search", id: "member-search", placeholder: "Name, serial number or UDID", autocomplete: "off" });
  const results = h("ul", { class: "plain results", id: "member-results", "aria-live": "polite" });
  let timer = null;
  let seq = 0;
  async function find() {
    const mine = ++seq;
    const q = search.value.trim();
    clear(results);
    if (!q) return;
    const [j, inGroup] = await Promise.all([get(`/v1/devices${qs({ q, limit: 10 })}`), loadMembers()]);
    if (mine !== seq) return;
    clear(results);
    const list = (j.devices || []);
    if (!list.length) results.append(h("li", { class: "help" }, "No device matches."));
    for (const d of list) {
      const add = act(h("button", { type: "button", class: "small", "aria-label": `Add ${deviceName(d)} to ${name}` }, inGroup.has(d.udid) ? "Member" : "Add"), "change groups");
      if (inGroup.has(d.udid)) add.disabled = true;
      add.addEventListener("click", async () => {
        add.disabled = true;
        try {
          await post(`/v1/device-groups/${enc}/members`, { devices: [d.udid] });
          announce(`Added ${deviceName(d)} to ${name}.`);
          add.textContent = "Member";
          await loadMembers();
        } catch (e) {
          add.disabled = false;
          if (!(e instanceof ApiError && e.status === 401)) announce(e.message, "error");
        }
      });
      results.append(h("li", { "data-udid": d.udid }, add, " ", deviceName(d),
        h("span", { class: "help" }, ` ${d.serial_number || ""} · ${PLATFORM_NAMES[d.platform] || d.platform}`)));
    }
  }
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => quietly(find()), 250); });

  // Rename and delete.
  const rename = field("Name", h("input", { type: "text", id: "rename-group", value: name, maxlength: 128, autocomplete: "off" }));
  const renameErr = h("p", { class: "field-error", hidden: true, role: "alert" });
  const renameBtn = act(h("button", { type: "submit", id: "rename-button" }, "Rename"), "rename groups");
  if (renameBtn.disabled) rename.input.disabled = true;
  const renameForm = h("form", { class: "inline-form", novalidate: true }, rename.wrap, renameBtn);
  renameForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    rename.clear();
    const v = rename.input.value.trim();
    if (!v) { rename.set("Enter the new name."); return; }
    if (v === name) return;
    try {
      await api("PATCH", `/v1/device-groups/${enc}`, { name: v });
      announce(`Renamed ${name} to ${v}.`);
      ctx.navigate(`#/groups/${encodeURIComponent(v)}`);
    } catch (x) {
      if (!(x instanceof ApiError && x.status === 401)) showError(x, { name: rename, new_name: rename }, renameErr);
    }
  });
  const delBtn = act(h("button", { type: "button", class: "danger", id: "delete-group" }, "Delete group"), "delete groups");
  delBtn.addEventListener("click", () => confirmDialog({
    id: "confirm-delete-group", opener: delBtn, title: `Delete “${name}”?`, confirm: "Delete group",
    body: `Its ${g.members} device${g.members === 1 ? "" : "s"} leave the group. Policies that reached them only through it queue RemoveProfile for them. The devices themselves stay.`,
    run: async () => {
      await del(`/v1/device-groups/${enc}`);
      announce(`Deleted ${name}.`);
      ctx.navigate("#/groups");
    },
  }));

  ctx.view(name,
    pageHead(h("span", {}, h("a", { href: "#/groups" }, "Device Groups")), h("span", { id: "group-title" }, name), delBtn),
    h("section", { class: "card", "aria-labelledby": "rename-h" }, h("h2", { id: "rename-h" }, "Settings"),
      renameForm, renameErr, h("p", { class: "help" }, `Created ${when(g.created)}.`)),
    h("section", { class: "card", "aria-labelledby": "members-h" },
      h("h2", { id: "members-h" }, "Members"), memberCount,
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "member-table" },
        h("caption", { class: "sr-only" }, "Members"),
        h("thead", {}, h("tr", {}, ["Device", "Serial", "Platform", ""].map((c) => h("th", { scope: "col" }, c)))),
        members)),
      h("h3", {}, "Add devices"),
      h("div", { class: "toolbar" }, h("label", { for: "member-search" }, "Find devices"), search),
      results),
    h("section", { class: "card", "aria-labelledby": "gp-h" },
      h("h2", { id: "gp-h" }, "Policies targeting this group"), policiesEl));
  await loadMembers();
  const pol = await get("/v1/policies?limit=1000").catch(() => ({ policies: [] }));
  const targeting = (pol.policies || []).filter((p) => ((p.targets && (p.targets.groups || p.targets.device_groups)) || []).includes(name));
  policiesEl.append(targeting.length
    ? targeting.map((p) => h("li", { "data-policy-id": p.id }, h("a", { href: `#/policies/${p.id}` }, p.name), ` (${PLATFORM_NAMES[p.platform] || p.platform})`))
    : h("li", { class: "help" }, "No policy targets this group."));
  return () => clearTimeout(timer);
}
