// The Dashboard: enrolled devices by platform, check-ins in the last hour, pending commands,
// commands failed today, the APNs connection and the push certificate's expiry (a warning
// from 30 days before), and the policies with failures.  Refreshed every 15 s while shown.
import { h, clear, when } from "./dom.js";
import { get, qs, ApiError } from "./api.js";
import { PLATFORM_NAMES, pageHead } from "./ui.js";

function tile(id, label, value, extra, href) {
  const v = h("p", { class: "tile-value", id }, value);
  return h("section", { class: "card tile", "aria-labelledby": `${id}-h` },
    h("h2", { id: `${id}-h` }, href ? h("a", { href }, label) : label), v, extra);
}

export async function dashboard(ctx) {
  const grid = h("div", { class: "tiles", id: "dashboard" });
  const failures = h("div", { id: "dash-policy-failures" });
  let timer = null;
  let alive = true;

  async function load() {
    clearTimeout(timer);
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    const [d, pol] = await Promise.all([
      get(`/v1/dashboard${qs({ failed_since: midnight.toISOString().replace(/\.\d+Z$/, "Z") })}`),
      get("/v1/policies?limit=1000").catch((e) => { if (e instanceof ApiError && e.status === 401) throw e; return { policies: [] }; }),
    ]);
    if (!alive) return;
    const by = d.devices.by_platform || {};
    const platforms = Object.keys(by).sort();
    const pc = d.pushcert;
    let certText = "No push certificate";
    let certNote = h("p", { class: "help" }, "Upload one in Settings → Push certificate.");
    let certClass = "notice warning";
    if (pc) {
      certText = pc.state === "expired" ? "Expired" : `${pc.days_left} day${pc.days_left === 1 ? "" : "s"} left`;
      certClass = pc.state === "ok" ? "" : pc.state === "expiring" ? "notice warning" : "notice error";
      certNote = h("p", { class: "help" }, `Topic ${pc.topic}; expires ${when(pc.not_after)}.`);
    }
    const apns = d.apns || { state: "none", connections: 0 };
    clear(grid);
    grid.append(
      tile("dash-enrolled", "Enrolled devices", String(d.devices.enrolled),
        h("ul", { class: "plain", id: "dash-platforms" }, platforms.length
          ? platforms.map((p) => h("li", { "data-platform": p },
            h("a", { href: `#/devices?platform=${p}&enrolled=true` }, PLATFORM_NAMES[p] || p), `: ${by[p]}`))
          : h("li", {}, "None yet.")), "#/devices"),
      tile("dash-checkins", "Check-ins in the last hour", String(d.checkins.devices),
        h("p", { class: "help" }, "Devices that talked to Scepter since ", when(d.checkins.since), "."), "#/devices?seen=1h"),
      tile("dash-pending", "Pending commands", String(d.commands.pending),
        h("p", { class: "help" }, "Queued, waiting for their device."), "#/commands"),
      tile("dash-failed", "Failed commands today", String(d.commands.failed),
        h("p", { class: "help" }, "Error or CommandFormatError since midnight."), "#/commands"),
      tile("dash-apns", "APNs", apns.state,
        h("p", { class: "help" }, `${apns.connections} connection${apns.connections === 1 ? "" : "s"} up.`)),
      h("section", { class: `card tile ${certClass}`.trim(), id: "dash-pushcert", "data-state": pc ? pc.state : "none", "aria-labelledby": "dash-pushcert-h" },
        h("h2", { id: "dash-pushcert-h" }, h("a", { href: "#/settings/pushcert" }, "Push certificate")),
        h("p", { class: "tile-value" }, certText),
        pc && pc.state !== "ok" ? h("p", { role: "alert" }, pc.state === "expired"
          ? "The push certificate has expired: devices no longer get pushes. Renew it with Apple and upload it."
          : "The push certificate expires within 30 days. Renew it with Apple (same topic) and upload it.") : null,
        certNote));
    const failing = (pol.policies || []).filter((p) => (p.counts && p.counts.failed) > 0);
    clear(failures);
    failures.append(failing.length
      ? h("ul", { class: "plain" }, failing.map((p) => h("li", { "data-policy-id": p.id },
        h("a", { href: `#/policies/${p.id}` }, p.name), ` — ${p.counts.failed} failed, ${p.counts.installed || 0} installed`)))
      : h("p", { class: "help" }, "No policy has failed on any device."));
    timer = setTimeout(() => load().catch(() => {}), 15000);
  }

  ctx.view("Dashboard",
    pageHead("Overview", "Dashboard"),
    grid,
    h("section", { class: "card", "aria-labelledby": "dash-pf-h" },
      h("h2", { id: "dash-pf-h" }, "Policies with failures"), failures));
  await load();
  return () => { alive = false; clearTimeout(timer); };
}
