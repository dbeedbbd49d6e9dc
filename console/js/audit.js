// Audit: who changed what, when and from where (GET /v1/audit), filtered by actor, action and
// time, newest first, older pages by next_before.  A server without the audit log says so.
import { h, clear, when } from "./dom.js";
import { get, qs } from "./api.js";
import { quietly, pageHead, probe } from "./ui.js";

const PAGE = 50;

export async function auditPage(ctx) {
  const p = ctx.params;
  const actor = h("input", { type: "search", id: "audit-actor", value: p.get("actor") || "", placeholder: "Account or key name" });
  const action = h("input", { type: "search", id: "audit-action", value: p.get("action") || "", placeholder: "e.g. device.removed" });
  const since = h("select", { id: "audit-since" }, [["", "Any time"], ["3600", "Last hour"], ["86400", "Last 24 hours"], ["604800", "Last 7 days"]]
    .map(([v, l]) => h("option", { value: v }, l)));
  const tbody = h("tbody");
  const more = h("button", { type: "button", id: "audit-older", hidden: true }, "Older entries");
  let before = "";
  async function load(append) {
    if (!append) before = "";
    const j = await get(`/v1/audit${qs({
      actor: actor.value.trim(), action: action.value.trim(), limit: PAGE, before,
      since: since.value ? new Date(Date.now() - Number(since.value) * 1000).toISOString().replace(/\.\d+Z$/, "Z") : "",
    })}`);
    if (!append) clear(tbody);
    const list = j.entries || [];
    if (!list.length && !append) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No entry matches.")));
    for (const e of list) {
      const a = e.actor || {};
      tbody.append(h("tr", { "data-audit-id": e.id, "data-action": e.action },
        h("td", {}, when(e.at)),
        h("th", { scope: "row" }, a.name || "—", h("span", { class: "help" }, ` ${a.type === "api_key" ? "(API key)" : ""}`)),
        h("td", { class: "mono" }, e.action),
        h("td", { class: "mono" }, e.object || "—"),
        h("td", {}, e.summary || e.route || ""),
        h("td", { class: "mono" }, e.address || "—")));
    }
    before = j.next_before ?? "";
    more.hidden = !before;
  }
  more.addEventListener("click", () => quietly(load(true)));
  let timer = null;
  for (const el of [actor, action]) el.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => quietly(load(false)), 300); });
  since.addEventListener("change", () => quietly(load(false)));
  const head = pageHead("Administration › Audit", "Audit log");
  const st = await probe("/v1/audit?limit=1");
  if (st === 404 || st === 403) {
    ctx.view("Audit log", head, h("section", { class: "card" },
      h("p", { class: "notice", id: "audit-missing" }, st === 404
        ? "This server keeps no audit log yet (GET /v1/audit is missing)."
        : "Your role cannot read the audit log.")));
    return null;
  }
  ctx.view("Audit log", head,
    h("section", { class: "card" },
      h("div", { class: "toolbar", role: "search" },
        h("label", { for: "audit-actor" }, "Actor"), actor,
        h("label", { for: "audit-action" }, "Action"), action,
        h("label", { for: "audit-since" }, "When"), since),
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "audit-table" },
        h("caption", { class: "sr-only" }, "Audit log"),
        h("thead", {}, h("tr", {}, ["When", "Who", "Action", "Object", "Summary", "From"].map((c) => h("th", { scope: "col" }, c)))),
        tbody)),
      h("div", { class: "pager" }, more)));
  await load(false);
  return () => clearTimeout(timer);
}
