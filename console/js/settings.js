// Settings: the push certificate (upload a PEM pair or a .p12 with its password; a topic
// change is refused unless confirmed), API keys (a new key is shown once; delete), operator
// accounts (admins only; on servers that have them), your password, and enrollment (the URL,
// enrollment tokens, the .mobileconfig download).
import { h, clear, when, announce, tabs, append } from "./dom.js";
import { get, post, put, del, api, ApiError } from "./api.js";
import {
  act, quietly, confirmDialog, field, showError, copyButton, readFile, pageHead, isAdmin,
  currentActor, serverHas, serverHasRoles,
} from "./ui.js";

const is401 = (e) => e instanceof ApiError && e.status === 401;
const ROLES = [["admin", "Admin — everything, including accounts, keys and the push certificate"],
  ["operator", "Operator — policies, groups, commands, pushes"], ["viewer", "Viewer — read only"]];

// ---------------------------------------------------------------------------------------------
// Push certificate

function pushcertPanel() {
  const current = h("div", { id: "pushcert-current" });
  async function load() {
    clear(current);
    let pc = null;
    try {
      pc = await get("/v1/pushcert");
    } catch (e) {
      if (is401(e)) throw e;
      current.append(h("p", { class: "notice warning", id: "pushcert-none" }, "No push certificate is installed: devices cannot be woken. Upload the one Apple issued for this server."));
      return;
    }
    const days = Math.floor((Date.parse(pc.not_after) - Date.now()) / 86400000);
    append(current, [h("dl", { class: "facts" },
      h("dt", {}, "Topic"), h("dd", { class: "mono", id: "pushcert-topic" }, pc.topic),
      h("dt", {}, "Expires"), h("dd", { id: "pushcert-expiry" }, `${when(pc.not_after)} (${days} day${days === 1 ? "" : "s"})`),
      h("dt", {}, "APNs"), h("dd", {}, pc.apns ? `${pc.apns.state}, ${pc.apns.connections} connection(s)` : "—"),
      h("dt", {}, "Updated"), h("dd", {}, when(pc.updated))),
    days <= 30 ? h("p", { class: "notice warning", role: "alert", id: "pushcert-warning" },
      days < 0 ? "This certificate has expired: renew it with Apple (same topic) and upload it."
        : `This certificate expires in ${days} day${days === 1 ? "" : "s"}: renew it with Apple (same topic) and upload it.`) : null]);
  }

  const modePem = h("input", { type: "radio", name: "pc-mode", id: "pc-mode-pem", value: "pem", checked: true });
  const modeP12 = h("input", { type: "radio", name: "pc-mode", id: "pc-mode-p12", value: "p12" });
  const cert = field("Certificate (PEM)", h("input", { type: "file", id: "pc-cert", accept: ".pem,.crt,.cer" }));
  const key = field("Private key (PEM)", h("input", { type: "file", id: "pc-key", accept: ".pem,.key" }));
  const p12 = field("Certificate and key (.p12)", h("input", { type: "file", id: "pc-p12", accept: ".p12,.pfx,application/x-pkcs12" }));
  const pw = field("Password of the .p12", h("input", { type: "password", id: "pc-password", autocomplete: "off" }));
  const pemBox = h("div", { id: "pc-pem-fields" }, cert.wrap, key.wrap);
  const p12Box = h("div", { id: "pc-p12-fields", hidden: true }, p12.wrap, pw.wrap);
  const sync = () => { pemBox.hidden = !modePem.checked; p12Box.hidden = modePem.checked; };
  modePem.addEventListener("change", sync);
  modeP12.addEventListener("change", sync);
  const formErr = h("p", { class: "field-error", hidden: true, role: "alert", id: "pc-error" });
  const upload = act(h("button", { type: "submit", class: "primary", id: "pc-upload" }, "Upload"), "change the push certificate", "admin");
  const form = h("form", { class: "card", "aria-labelledby": "pc-up-h", novalidate: true },
    h("h2", { id: "pc-up-h" }, "Upload a push certificate"),
    h("fieldset", {}, h("legend", {}, "Format"),
      h("label", { class: "check", for: "pc-mode-pem" }, modePem, "PEM certificate and key"),
      h("label", { class: "check", for: "pc-mode-p12" }, modeP12, ".p12 with password")),
    pemBox, p12Box, formErr, h("div", { class: "actions" }, upload));
  const fields = { cert_pem: cert, key_pem: key, pkcs12: p12, password: pw };

  async function send(body) {
    const r = await put("/v1/pushcert", body);
    announce(`Push certificate installed: topic ${r.topic}, expires ${when(r.not_after)}.`);
    form.reset(); // (the radios' checked was set as a property: reset clears both)
    modePem.checked = true;
    sync();
    await load();
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const f of Object.values(fields)) f.clear();
    formErr.hidden = true;
    let body;
    if (modePem.checked) {
      if (!cert.input.files.length) { cert.set("Choose the certificate file."); return; }
      if (!key.input.files.length) { key.set("Choose the private key file."); return; }
      body = { cert_pem: await readFile(cert.input.files[0], true), key_pem: await readFile(key.input.files[0], true) };
    } else {
      if (!p12.input.files.length) { p12.set("Choose the .p12 file."); return; }
      body = { pkcs12: await readFile(p12.input.files[0]), password: pw.input.value };
    }
    upload.disabled = true;
    try {
      await send(body);
    } catch (x) {
      if (is401(x)) return;
      if (x.status === 409 && x.field === "confirm_topic_change") {
        // Devices enrolled with the old topic would stop answering: say so, ask.
        confirmDialog({
          id: "confirm-topic", opener: upload, title: "Change the push topic?", confirm: "Change topic anyway",
          body: [
            h("p", { id: "topic-consequence" }, "This certificate is for another push topic than the one your enrolled devices use. Devices only answer pushes for the topic they enrolled with: after the change they stop answering — no command reaches them — until each one enrolls again."),
            h("p", { class: "help" }, x.message),
            "Renewing a certificate keeps its topic: if you meant to renew, use the renewed certificate of the same Apple ID instead."],
          run: () => send({ ...body, confirm_topic_change: true }),
        });
      } else {
        showError(x, fields, formErr);
      }
    } finally {
      upload.disabled = false;
    }
  });
  return { el: h("div", {}, h("section", { class: "card", "aria-labelledby": "pc-h" }, h("h2", { id: "pc-h" }, "Current certificate"), current), form), load };
}

// ---------------------------------------------------------------------------------------------
// API keys

function apikeysPanel() {
  const tbody = h("tbody");
  const shown = h("div", { id: "new-key", hidden: true, class: "notice", role: "status" });
  async function load() {
    const j = await get("/v1/apikeys");
    clear(tbody);
    const list = j.api_keys || [];
    if (!list.length) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No API key yet (the bootstrap key from the configuration still works).")));
    for (const k of list) {
      const d = act(h("button", { type: "button", class: "danger small", "aria-label": `Delete API key ${k.name}` }, "Delete"), "delete API keys", "admin");
      d.addEventListener("click", () => confirmDialog({
        id: "confirm-delete-key", opener: d, title: `Delete the API key “${k.name}”?`, confirm: "Delete key",
        body: "Scripts using it are refused from now on, and sessions signed in with it end.",
        run: async () => { await del(`/v1/apikeys/${k.id}`); announce(`Deleted API key ${k.name}.`); await load(); },
      }));
      tbody.append(h("tr", { "data-key-id": k.id, "data-key-name": k.name },
        h("th", { scope: "row" }, k.name), h("td", {}, k.role || "admin"), h("td", { class: "mono" }, `${k.hash_prefix}…`),
        h("td", {}, when(k.created)), h("td", {}, when(k.last_used)), h("td", {}, d)));
    }
  }
  const name = field("Name", h("input", { type: "text", id: "key-name", maxlength: 128, autocomplete: "off", placeholder: "e.g. inventory-sync" }));
  const err = h("p", { class: "field-error", hidden: true, role: "alert" });
  const create = act(h("button", { type: "submit", class: "primary", id: "create-key" }, "Create key"), "create API keys", "admin");
  const roleSel = h("select", { id: "key-role" }, ROLES.map(([r]) => h("option", { value: r }, r)));
  roleSel.value = "operator";
  const role = field("Role", roleSel);
  const form = h("form", { class: "inline-form", novalidate: true }, name.wrap, serverHasRoles() ? role.wrap : null, create);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    name.clear();
    if (!name.input.value.trim()) { name.set("Name the key (who or what uses it)."); return; }
    try {
      const r = await post("/v1/apikeys", serverHasRoles()
        ? { name: name.input.value.trim(), role: roleSel.value } : { name: name.input.value.trim() });
      clear(shown);
      shown.append(h("p", {}, h("strong", {}, `The key for ${r.name} — shown once. `), "Copy it now: only its hash is stored."),
        h("p", { class: "secret" }, h("code", { id: "new-key-value" }, r.key), " ", copyButton(r.key)));
      shown.hidden = false;
      name.input.value = "";
      await load();
    } catch (x) {
      if (!is401(x)) showError(x, { name, role }, err);
    }
  });
  return {
    el: h("section", { class: "card", "aria-labelledby": "keys-h" }, h("h2", { id: "keys-h" }, "API keys"),
      h("p", { class: "help" }, "Keys let scripts and scepterctl use the API (Authorization: Bearer)."),
      form, err, shown,
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "key-table" },
        h("caption", { class: "sr-only" }, "API keys"),
        h("thead", {}, h("tr", {}, ["Name", "Role", "Hash", "Created", "Last used", ""].map((c) => h("th", { scope: "col" }, c)))),
        tbody))),
    load,
  };
}

// ---------------------------------------------------------------------------------------------
// Operator accounts (admins) and your password


function accountsPanel() {
  const body = h("div", { id: "accounts" });
  async function load() {
    clear(body);
    if (!(await serverHas("/v1/operators"))) {
      body.append(h("p", { class: "notice", id: "accounts-missing" }, "This server has no operator accounts: sign in with an API key."));
      return;
    }
    const j = await get("/v1/operators");
    const tbody = h("tbody");
    for (const o of j.operators || []) {
      const role = h("select", { "aria-label": `Role of ${o.name}`, "data-operator": o.name }, ROLES.map(([r]) => h("option", { value: r }, r)));
      role.value = o.role;
      role.addEventListener("change", async () => {
        try {
          await api("PATCH", `/v1/operators/${encodeURIComponent(o.name)}`, { role: role.value });
          announce(`${o.name} is now ${role.value}.`);
        } catch (e) { role.value = o.role; if (!is401(e)) announce(e.message, "error"); }
      });
      const dis = h("button", { type: "button", class: "small" }, o.disabled ? "Enable" : "Disable");
      dis.addEventListener("click", async () => {
        try {
          await api("PATCH", `/v1/operators/${encodeURIComponent(o.name)}`, { disabled: !o.disabled });
          await load();
        } catch (e) { if (!is401(e)) announce(e.message, "error"); }
      });
      const rm = h("button", { type: "button", class: "danger small", "aria-label": `Delete account ${o.name}` }, "Delete");
      rm.addEventListener("click", () => confirmDialog({
        id: "confirm-delete-operator", opener: rm, title: `Delete the account “${o.name}”?`, confirm: "Delete account",
        body: "Its sessions end at once. The audit log keeps what it did.",
        run: async () => { await del(`/v1/operators/${encodeURIComponent(o.name)}`); await load(); },
      }));
      tbody.append(h("tr", { "data-operator": o.name },
        h("th", { scope: "row" }, o.name), h("td", {}, role), h("td", {}, o.disabled ? "Disabled" : "Active"),
        h("td", {}, when(o.last_sign_in_at)), h("td", {}, h("div", { class: "actions" }, dis, rm))));
    }
    const name = field("Name", h("input", { type: "text", id: "op-name", autocomplete: "off" }));
    const roleSel = h("select", { id: "op-role" }, ROLES.map(([r, l]) => h("option", { value: r }, l)));
    roleSel.value = "operator";
    const role = field("Role", roleSel);
    const pw = field("Initial password", h("input", { type: "password", id: "op-password", autocomplete: "new-password" }), "Tell it to them privately; they change it after signing in.");
    const err = h("p", { class: "field-error", hidden: true, role: "alert" });
    const form = h("form", { class: "grid", novalidate: true, "aria-label": "New operator account" }, name.wrap, role.wrap, pw.wrap,
      h("div", { class: "field" }, h("span", { class: "label" }, " "), h("button", { type: "submit", class: "primary", id: "create-operator" }, "Create account")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      for (const f of [name, role, pw]) f.clear();
      err.hidden = true;
      try {
        await post("/v1/operators", { name: name.input.value.trim(), role: roleSel.value, password: pw.input.value });
        announce(`Created ${name.input.value.trim()}.`);
        await load();
      } catch (x) {
        if (!is401(x)) showError(x, { name, role, password: pw }, err);
      }
    });
    body.append(form, err,
      h("div", { class: "table-wrap" }, h("table", { class: "list", id: "operator-table" },
        h("caption", { class: "sr-only" }, "Operator accounts"),
        h("thead", {}, h("tr", {}, ["Name", "Role", "State", "Last sign-in", ""].map((c) => h("th", { scope: "col" }, c)))),
        tbody)));
  }
  return { el: h("section", { class: "card", "aria-labelledby": "acc-h" }, h("h2", { id: "acc-h" }, "Operator accounts"), body), load };
}

function passwordPanel() {
  const cur = field("Current password", h("input", { type: "password", id: "pw-current", autocomplete: "current-password" }));
  const nw = field("New password", h("input", { type: "password", id: "pw-new", autocomplete: "new-password" }));
  const again = field("New password again", h("input", { type: "password", id: "pw-again", autocomplete: "new-password" }));
  const err = h("p", { class: "field-error", hidden: true, role: "alert" });
  const form = h("form", { class: "card", "aria-labelledby": "pw-h", novalidate: true },
    h("h2", { id: "pw-h" }, "Your password"),
    h("p", { class: "help" }, "Changing it signs out your other sessions."),
    cur.wrap, nw.wrap, again.wrap, err, h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "change-password" }, "Change password")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const f of [cur, nw, again]) f.clear();
    err.hidden = true;
    if (nw.input.value !== again.input.value) { again.set("The two new passwords differ."); return; }
    try {
      await post("/v1/sessions/current/password", { current_password: cur.input.value, new_password: nw.input.value });
      form.reset();
      announce("Password changed.");
    } catch (x) {
      if (!is401(x)) showError(x, { current_password: cur, new_password: nw }, err);
    }
  });
  return form;
}

// ---------------------------------------------------------------------------------------------
// Enrollment

function enrollmentPanel() {
  const info = h("div", { id: "enrollment-info" });
  const tbody = h("tbody");
  const shown = h("div", { id: "new-token", hidden: true, class: "notice", role: "status" });
  let cfg = null;
  const downloadLink = (token) => `/mdm/enroll${token ? `?token=${encodeURIComponent(token)}` : ""}`;
  async function load() {
    cfg = await get("/v1/enrollment").catch((e) => { if (is401(e)) throw e; return null; });
    clear(info);
    if (cfg) {
      append(info, [h("dl", { class: "facts" },
        h("dt", {}, "Enrollment URL"), h("dd", {}, h("code", { id: "enrollment-url" }, cfg.url), " ", copyButton(cfg.url)),
        h("dt", {}, "Access"), h("dd", { id: "enrollment-access" }, !cfg.gated ? "Open: anyone who can reach the URL gets the profile."
          : [cfg.tokens ? "An enrollment token (?token=)" : null, cfg.secret ? "the enrollment secret (?secret=)" : null].filter(Boolean).join(" or ") + " is needed.")),
      !cfg.gated ? h("p", {}, h("a", { class: "button", id: "download-profile", href: downloadLink(), download: "enroll.mobileconfig" }, "Download .mobileconfig")) : null]);
    }
    const j = await get("/v1/enrollment-tokens");
    clear(tbody);
    const list = j.enrollment_tokens || [];
    if (!list.length) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No token.")));
    for (const t of list) {
      const d = act(h("button", { type: "button", class: "danger small", "aria-label": `Delete token ${t.id}` }, "Delete"), "delete enrollment tokens");
      d.addEventListener("click", () => confirmDialog({
        id: "confirm-delete-token", opener: d, title: "Delete this enrollment token?", confirm: "Delete token",
        body: "Devices can no longer fetch the enrollment profile with it.",
        run: async () => { await del(`/v1/enrollment-tokens/${t.id}`); await load(); },
      }));
      tbody.append(h("tr", { "data-token-id": t.id },
        h("th", { scope: "row" }, t.note || `#${t.id}`), h("td", {}, t.uses ? `${t.used} of ${t.uses}` : `${t.used} (unlimited)`),
        h("td", {}, when(t.expires_at)), h("td", {}, when(t.created)), h("td", {}, when(t.last_used)), h("td", {}, d)));
    }
    if (!j.accepted) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "help" }, "Tokens are not accepted by /mdm/enroll on this server (enroll_tokens = false).")));
  }
  const note = field("Note", h("input", { type: "text", id: "token-note", autocomplete: "off", placeholder: "e.g. Lab Macs, week 49" }));
  const uses = field("Uses (0 = unlimited until it expires)", h("input", { type: "number", id: "token-uses", min: 0, value: "1" }));
  const exp = h("select", { id: "token-expires" }, [["1h", "1 hour"], ["1d", "1 day"], ["7d", "7 days"], ["30d", "30 days"]].map(([v, l]) => h("option", { value: v }, l)));
  exp.value = "7d";
  const expires = field("Expires in", exp);
  const err = h("p", { class: "field-error", hidden: true, role: "alert" });
  const create = act(h("button", { type: "submit", class: "primary", id: "create-token" }, "Create token"), "create enrollment tokens");
  const form = h("form", { class: "grid", novalidate: true, "aria-label": "New enrollment token" }, note.wrap, uses.wrap, expires.wrap,
    h("div", { class: "field" }, h("span", { class: "label" }, " "), create));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const f of [note, uses, expires]) f.clear();
    err.hidden = true;
    try {
      const r = await post("/v1/enrollment-tokens", { note: note.input.value.trim() || undefined, uses: Number(uses.input.value || 0), expires_in: exp.value });
      const url = `${cfg ? cfg.url : location.origin + "/mdm/enroll"}?token=${encodeURIComponent(r.token)}`;
      clear(shown);
      shown.append(h("p", {}, h("strong", {}, "The token — shown once. "), "Give devices this URL (or download the profile now)."),
        h("p", { class: "secret" }, h("code", { id: "new-token-url" }, url), " ", copyButton(url)),
        h("p", {}, h("a", { class: "button", id: "download-token-profile", href: downloadLink(r.token), download: "enroll.mobileconfig" }, "Download .mobileconfig")));
      shown.hidden = false;
      await load();
    } catch (x) {
      if (!is401(x)) showError(x, { note, uses, expires_in: expires }, err);
    }
  });
  return {
    el: h("div", {},
      h("section", { class: "card", "aria-labelledby": "enr-h" }, h("h2", { id: "enr-h" }, "Enrollment"), info),
      h("section", { class: "card", "aria-labelledby": "tok-h" }, h("h2", { id: "tok-h" }, "Enrollment tokens"), form, err, shown,
        h("div", { class: "table-wrap" }, h("table", { class: "list", id: "token-table" },
          h("caption", { class: "sr-only" }, "Enrollment tokens"),
          h("thead", {}, h("tr", {}, ["Note", "Used", "Expires", "Created", "Last used", ""].map((c) => h("th", { scope: "col" }, c)))),
          tbody)))),
    load,
  };
}

export async function settingsPage(ctx, tab) {
  const pc = pushcertPanel();
  const keys = apikeysPanel();
  const enr = enrollmentPanel();
  const list = [{ id: "pushcert", label: "Push certificate", panel: pc.el, load: pc.load }];
  if (isAdmin()) {
    list.push({ id: "apikeys", label: "API keys", panel: keys.el, load: keys.load });
    const acc = accountsPanel();
    list.push({ id: "accounts", label: "Operator accounts", panel: acc.el, load: acc.load });
  }
  if (currentActor().type === "operator") list.push({ id: "password", label: "Your password", panel: passwordPanel(), load: async () => {} });
  list.push({ id: "enrollment", label: "Enrollment", panel: enr.el, load: enr.load });
  const loaded = new Set();
  let ready = false;
  const t = tabs("Settings", list, (id) => {
    if (!ready) return;
    history.replaceState(null, "", `#/settings/${id}`);
    if (!loaded.has(id)) { loaded.add(id); quietly(list.find((x) => x.id === id).load()); }
  });
  ctx.view("Settings", pageHead("Administration › Settings", "Settings"), t.el);
  const first = list.find((x) => x.id === tab) ? tab : "pushcert";
  ready = true;
  t.select(first, false);
  return null;
}
