// The SCEP Profiles policy form, field by field as the admin guide describes it, with the
// Device Groups and Devices tabs for its targets.  Every error, the page's own or the
// server's, is shown next to the field it names; nothing is saved while one stands.
import { h, clear, tabs, announce, uid } from "./dom.js";
import { get, post, put, qs, ApiError } from "./api.js";
import { parseFingerprint } from "./fingerprint.js";
import { composeSubject, parseSubject, SHORT_NAMES } from "./subject.js";
import { precheckCertificate, bytesToBase64 } from "./cert.js";
import { PLATFORMS, quietly } from "./policies.js";

const DEFAULT_NAME = { macos: "Mac SCEP Profiles", ios: "iOS SCEP Profiles" };
const PAGE = 20;

// Server field names -> the form's element ids.
const FIELD_IDS = [
  ["scep.allow_all_apps_access", "allow-all-apps"],
  ["scep.keychain", "keychain"],
  ["linked.wifi.ssid", "linked-wifi-ssid"],
  ["linked.wifi.encryption", "linked-wifi-encryption"],
  ["linked.wifi.hidden", "linked-wifi-hidden"],
  ["linked.wifi.auto_join", "linked-wifi-auto-join"],
  ["linked.wifi.trusted_server_names", "linked-wifi-servers"],
  ["linked.wifi.outer_identity", "linked-wifi-outer"],
  ["linked.wifi.username", "linked-wifi-username"],
  ["linked.wifi", "use-wifi"],
  ["linked.ethernet.interface", "linked-ethernet-interface"],
  ["linked.ethernet.trusted_server_names", "linked-ethernet-servers"],
  ["linked.ethernet.outer_identity", "linked-ethernet-outer"],
  ["linked.ethernet.username", "linked-ethernet-username"],
  ["linked.ethernet", "use-ethernet"],
  ["linked.vpn.name", "linked-vpn-name"],
  ["linked.vpn.server_certificate_issuer_common_name", "linked-vpn-issuer"],
  ["linked.vpn.server_certificate_common_name", "linked-vpn-server-cn"],
  ["linked.vpn.server", "linked-vpn-server"],
  ["linked.vpn.remote_identifier", "linked-vpn-remote"],
  ["linked.vpn.local_identifier", "linked-vpn-local"],
  ["linked.vpn", "use-vpn"],
  ["linked", "use-wifi"],
  ["scep.subject_alt_name.dns_name", "san-dns"],
  ["scep.subject_alt_name.nt_principal_name", "san-principal"],
  ["scep.subject_alt_name.rfc822_name", "san-rfc822"],
  ["scep.subject_alt_name.uri", "san-uri"],
  ["scep.subject_alt_name", "san-dns"],
  ["scep.root_certificate", "root-certificate"],
  ["root_certificate", "root-certificate"],
  ["scep.fingerprint", "fingerprint"],
  ["scep.challenge", "challenge"],
  ["scep.key_size", "key-size"],
  ["scep.subject", "subject"],
  ["scep.retry_delay", "retry-delay"],
  ["scep.retries", "retries"],
  ["scep.key_extractable", "key-extractable"],
  ["scep.key_usage", "key-usage"],
  ["scep.url", "scep-url"],
  ["scep.name", "scep-name"],
  ["targets", "targets"],
  ["ddm", "ddm"],
  ["name", "policy-name"],
  ["notes", "policy-notes"],
];

function fieldId(field) {
  if (!field) return null;
  for (const [prefix, id] of FIELD_IDS) {
    if (field === prefix || field.startsWith(`${prefix}.`) || field.startsWith(`${prefix}[`)) return id;
  }
  return null;
}

const VAR_RE = /%([A-Za-z][A-Za-z0-9_]*)%/g;

// Lists typed as "a, b, c" (subjectAltNames, trusted server names) and back.
const joinList = (v) => (Array.isArray(v) ? v.join(", ") : v || "");
const splitList = (text) => text.split(",").map((x) => x.trim()).filter(Boolean);
// One value as a string, several as an array (what the API takes for subjectAltNames).
const oneOrMany = (list) => (list.length === 1 ? list[0] : list);

export async function policyForm(ctx, { id, platform }) {
  const editing = id !== undefined;
  const existing = editing ? await get(`/v1/policies/${encodeURIComponent(id)}`) : null;
  platform = existing ? existing.platform : platform;
  const scep = existing?.scep || {};
  const plat = PLATFORMS[platform];
  let variables = [];
  try {
    // Every variable (not only this platform's), so those it cannot resolve can be flagged.
    const v = await get("/v1/policy-variables");
    variables = v.variables || [];
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw e;
  }
  const groupsReply = await get("/v1/device-groups");
  const groups = Array.isArray(groupsReply) ? groupsReply : groupsReply.device_groups || [];

  const errors = new Map(); // element id -> message (the page's own checks)
  const formError = h("div", { id: "form-error", class: "notice error", role: "alert", hidden: true });
  let tabset = null;
  const tabOf = new Map(); // element id -> tab id

  // A labelled field: label, control, help, error (aria-describedby ties them together).
  function field(idv, label, control, help, extra) {
    const err = h("p", { id: `${idv}-error`, class: "field-error", hidden: true });
    const helpEl = help ? h("p", { id: `${idv}-help`, class: "help" }, help) : null;
    control.id = control.id || idv;
    control.setAttribute("aria-describedby", [helpEl ? `${idv}-help` : null, `${idv}-error`].filter(Boolean).join(" "));
    return h("div", { class: "field", "data-field": idv }, h("label", { for: idv }, label), control, extra, helpEl, err);
  }
  function showError(idv, msg) {
    const err = document.getElementById(`${idv}-error`);
    const ctl = document.getElementById(idv);
    if (!err) return false;
    err.textContent = msg;
    err.hidden = !msg;
    if (ctl) {
      if (msg) ctl.setAttribute("aria-invalid", "true");
      else ctl.removeAttribute("aria-invalid");
    }
    return true;
  }
  function setLocal(idv, msg) {
    if (msg) errors.set(idv, msg);
    else errors.delete(idv);
    showError(idv, msg);
  }
  function clearServerErrors() {
    formError.hidden = true;
    for (const e of document.querySelectorAll(".field-error[data-server]")) {
      e.removeAttribute("data-server");
      const idv = e.id.replace(/-error$/, "");
      showError(idv, errors.get(idv) || "");
    }
  }
  function focusField(idv) {
    const tab = tabOf.get(idv);
    if (tab && tabset) tabset.select(tab, false);
    const ctl = document.getElementById(idv);
    if (ctl) ctl.focus();
  }

  // --- Name and notes ----------------------------------------------------------------
  const name = h("input", { type: "text", value: existing ? existing.name : DEFAULT_NAME[platform], maxlength: 200, autocomplete: "off" });
  const notes = h("textarea", { rows: 3, maxlength: 2000 }, existing?.notes || "");
  name.addEventListener("input", () => setLocal("policy-name", ""));

  // --- Fingerprint -------------------------------------------------------------------
  const fp = h("input", { type: "text", value: scep.fingerprint || "", autocomplete: "off", spellcheck: "false", class: "mono" });
  const fpOut = h("output", { id: "fingerprint-understood", for: "fingerprint", "aria-live": "polite", class: "understood" });
  function checkFingerprint() {
    const r = parseFingerprint(fp.value);
    clear(fpOut);
    if (r.empty) { setLocal("fingerprint", ""); return r; }
    if (!r.ok) { setLocal("fingerprint", `Fingerprint: ${r.error}`); return r; }
    setLocal("fingerprint", "");
    fpOut.append(h("span", { class: "badge", id: "fingerprint-algorithm" }, r.algorithm), " ",
      h("span", {}, "sent as "), h("code", { id: "fingerprint-base64" }, r.base64));
    return r;
  }
  fp.addEventListener("input", checkFingerprint);

  // --- Challenge (masked, with reveal) ---------------------------------------------------
  const challenge = h("input", { type: "password", value: scep.challenge || "", autocomplete: "off", spellcheck: "false" });
  const reveal = h("button", {
    type: "button", class: "ghost", id: "challenge-reveal", "aria-pressed": "false", "aria-controls": "challenge",
    onclick: () => {
      const show = challenge.type === "password";
      challenge.type = show ? "text" : "password";
      reveal.setAttribute("aria-pressed", show ? "true" : "false");
      reveal.textContent = show ? "Hide" : "Show";
    },
  }, "Show");

  // --- Key size ------------------------------------------------------------------------
  const keySize = h("select", {}, [1024, 2048, 4096].map((n) => h("option", { value: n }, `${n}`)));
  keySize.value = String(scep.key_size || 1024);
  const keyWarn = h("p", { id: "key-size-warning", class: "warning", hidden: true },
    "1024-bit RSA keys are weak: choose 2048 or 4096 unless the SCEP server cannot issue them.");
  const syncKeyWarn = () => { keyWarn.hidden = keySize.value !== "1024"; };
  keySize.addEventListener("change", syncKeyWarn);
  syncKeyWarn();

  // --- Subject: Add Value rows and the statement as text ------------------------------
  const subjectText = h("input", { type: "text", value: scep.subject || "", class: "mono", spellcheck: "false", placeholder: "/C=US/O=ABCEnterprise/CN=foo/" });
  const rowsEl = h("div", { class: "subject-rows", id: "subject-rows" });
  const datalistId = uid("oids");
  const datalist = h("datalist", { id: datalistId }, SHORT_NAMES.map((n) => h("option", { value: n })));
  let rows = parseSubject(scep.subject || "").rows;
  function renderRows() {
    clear(rowsEl);
    rows.forEach((r, i) => {
      const oidId = uid("oid");
      const valId = uid("val");
      const oid = h("input", { type: "text", id: oidId, list: datalistId, value: r.oid, class: "oid", "data-row": i, spellcheck: "false" });
      const val = h("input", { type: "text", id: valId, value: r.value, class: "val", "data-row": i, spellcheck: "false" });
      oid.addEventListener("input", () => { r.oid = oid.value; syncText(); });
      val.addEventListener("input", () => { r.value = val.value; syncText(); });
      rowsEl.append(h("div", { class: "subject-row" },
        h("label", { for: oidId, class: "sr-only" }, `Subject value ${i + 1}: OID or short name`), oid,
        h("span", { "aria-hidden": "true" }, "="),
        h("label", { for: valId, class: "sr-only" }, `Subject value ${i + 1}: value`), val,
        h("button", {
          type: "button", class: "ghost", "aria-label": `Remove subject value ${i + 1}`,
          onclick: () => { rows.splice(i, 1); renderRows(); syncText(); },
        }, "Remove")));
    });
  }
  function syncText() {
    subjectText.value = composeSubject(rows);
    checkVariables();
  }
  subjectText.addEventListener("input", () => {
    const p = parseSubject(subjectText.value);
    setLocal("subject", p.error ? `Subject: ${p.error}` : "");
    if (!p.error) { rows = p.rows; renderRows(); }
    checkVariables();
  });
  const addValue = h("button", {
    type: "button", id: "subject-add", onclick: () => {
      rows.push({ oid: "", value: "" });
      renderRows();
      rowsEl.querySelector(".subject-row:last-child input.oid").focus();
    },
  }, "Add Value");
  renderRows();

  // --- Retries, delay, extractable, key usage, URL, name -----------------------------------
  const retries = h("input", { type: "number", min: 0, max: 100, value: scep.retries ?? 3, inputmode: "numeric" });
  const retryDelay = h("input", { type: "number", min: 0, max: 3600, value: scep.retry_delay ?? 10, inputmode: "numeric" });
  const extractable = h("input", { type: "checkbox", id: "key-extractable", checked: !!scep.key_extractable });
  const ku = scep.key_usage || [];
  const kuSign = h("input", { type: "checkbox", id: "key-usage-signing", checked: ku.includes("signing") });
  const kuEnc = h("input", { type: "checkbox", id: "key-usage-encryption", checked: ku.includes("encryption") });
  const kuErr = h("p", { id: "key-usage-error", class: "field-error", hidden: true });
  const url = h("input", { type: "url", value: scep.url || "", placeholder: "https://scep.example.com/scep", spellcheck: "false", class: "mono" });
  const scepName = h("input", { type: "text", value: scep.name || "", placeholder: "The CA's name, if the server wants one" });

  // --- Root certificate ----------------------------------------------------------------
  let rootB64 = scep.root_certificate || null;
  const includeRoot = h("input", { type: "checkbox", id: "include-root", checked: !!rootB64 });
  const rootFile = h("input", { type: "file", accept: ".cer,.crt,.pem,.der,application/pkix-cert,application/x-x509-ca-cert" });
  const rootInfo = h("dl", { id: "root-certificate-info", class: "facts", "aria-live": "polite" });
  const rootBox = h("div", { class: "sub", hidden: !rootB64 },
    field("root-certificate", "Root certificate (.cer or .crt, DER or PEM, under 1 MB)", rootFile), rootInfo);
  includeRoot.addEventListener("change", () => {
    rootBox.hidden = !includeRoot.checked;
    if (!includeRoot.checked) setLocal("root-certificate", "");
  });
  async function describe(b64) {
    clear(rootInfo);
    const info = await post("/v1/certificates/inspect", { data: b64 });
    for (const [k, label] of [["subject", "Subject"], ["issuer", "Issuer"], ["not_after", "Expires"], ["sha256", "SHA-256 fingerprint"], ["sha1", "SHA-1 fingerprint"]]) {
      rootInfo.append(h("dt", {}, label), h("dd", { class: k.startsWith("sha") ? "mono" : null, "data-cert": k }, info[k] ?? "—"));
    }
  }
  rootFile.addEventListener("change", async () => {
    rootB64 = null;
    clear(rootInfo);
    setLocal("root-certificate", "");
    const f = rootFile.files[0];
    if (!f) return;
    const bytes = new Uint8Array(await f.arrayBuffer());
    const why = precheckCertificate(f.name, bytes);
    if (why) { setLocal("root-certificate", why); return; }
    const b64 = bytesToBase64(bytes);
    try {
      await describe(b64);
      rootB64 = b64;
      setLocal("root-certificate", "");
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      setLocal("root-certificate", `${f.name}: ${e.message}`);
    }
  });

  // --- Subject Alternative Name with the variable picker -------------------------------------
  const sanRoot = scep.subject_alt_name || {};
  const hasSan = Object.values(sanRoot).some(Boolean);
  const setSan = h("input", { type: "checkbox", id: "set-san", checked: hasSan });
  const sanInputs = {};
  const sanFields = [
    ["dns_name", "san-dns", "DNS Name"], ["nt_principal_name", "san-principal", "Principal"],
    ["rfc822_name", "san-rfc822", "RFC 822 Name"], ["uri", "san-uri", "URI"],
  ];
  const forPlatform = variables.filter((v) => !v.platforms || v.platforms.includes(platform));
  function picker(target, label) {
    const sel = h("select", { id: `${target.id}-var`, "aria-label": `Insert a variable into ${label}`, class: "var-picker" },
      h("option", { value: "" }, "Insert variable…"),
      variables.map((v) => {
        const ok = !v.platforms || v.platforms.includes(platform);
        return h("option", { value: v.name, title: v.description || "", "data-supported": ok ? "true" : "false" },
          ok ? v.name : `${v.name} (not on ${plat})`);
      }));
    sel.addEventListener("change", () => {
      if (!sel.value) return;
      const at = target.selectionStart ?? target.value.length;
      target.value = target.value.slice(0, at) + sel.value + target.value.slice(target.selectionEnd ?? at);
      sel.value = "";
      target.dispatchEvent(new Event("input"));
      target.focus();
    });
    return sel;
  }
  const sanBox = h("div", { class: "sub", hidden: !hasSan });
  for (const [key, idv, label] of sanFields) {
    const inp = h("input", { type: "text", id: idv, value: joinList(sanRoot[key]), spellcheck: "false", class: "mono" });
    inp.addEventListener("input", checkVariables);
    sanInputs[key] = inp;
    sanBox.append(field(idv, label, inp, null, picker(inp, label)));
  }
  setSan.addEventListener("change", () => { sanBox.hidden = !setSan.checked; checkVariables(); });

  // --- Keychain and app access (macOS) --------------------------------------------------
  const keychain = h("select", { id: "keychain" },
    h("option", { value: "device" }, "Device (System keychain)"),
    h("option", { value: "user" }, "User (the signed-in user's login keychain)"));
  keychain.value = scep.keychain === "user" ? "user" : "device";
  const allowAll = h("input", { type: "checkbox", id: "allow-all-apps", checked: !!scep.allow_all_apps_access });

  // --- Use this certificate for: Wi-Fi, Ethernet 802.1X, VPN in the same profile ----------
  const linked = existing?.linked || {};
  const inputs = {};
  function text(idv, value, label, help, opts = {}) {
    const inp = h("input", { type: "text", id: idv, value: value || "", spellcheck: "false", autocomplete: "off", ...opts });
    inp.addEventListener("input", () => setLocal(idv, ""));
    inputs[idv] = inp;
    return field(idv, label, inp, help);
  }
  function useBox(key, label, help, fields) {
    const on = h("input", { type: "checkbox", id: `use-${key}`, checked: !!linked[key] });
    const box = h("div", { class: "sub linked-fields", id: `linked-${key}`, hidden: !linked[key] }, fields);
    on.addEventListener("change", () => { box.hidden = !on.checked; });
    const err = h("p", { class: "field-error", id: `use-${key}-error`, hidden: true });
    return { on, el: h("div", { class: "field wide linked-use", "data-field": `use-${key}` },
      h("label", { class: "check" }, on, ` ${label}`), h("p", { class: "help" }, help), err, box) };
  }
  const w = linked.wifi || {};
  const wifiEnc = h("select", { id: "linked-wifi-encryption" },
    h("option", { value: "WPA2" }, "WPA2 Enterprise"), h("option", { value: "WPA3" }, "WPA3 Enterprise"));
  wifiEnc.value = w.encryption === "WPA3" ? "WPA3" : "WPA2";
  const wifiHidden = h("input", { type: "checkbox", id: "linked-wifi-hidden", checked: !!w.hidden });
  const wifiAuto = h("input", { type: "checkbox", id: "linked-wifi-auto-join", checked: w.auto_join !== false });
  const useWifi = useBox("wifi", "Wi-Fi", "WPA2/WPA3 Enterprise with EAP-TLS: the device joins with this certificate.", [
    text("linked-wifi-ssid", w.ssid, "Network Name (SSID)", null, { maxlength: 32 }),
    field("linked-wifi-encryption", "Security", wifiEnc),
    h("div", { class: "field" }, h("label", { class: "check" }, wifiHidden, " Hidden network"),
      h("label", { class: "check" }, wifiAuto, " Join automatically")),
    text("linked-wifi-servers", joinList(w.trusted_server_names), "Trusted Server Names",
      "The RADIUS server's certificate names, separated by commas (e.g. radius.example.com, *.example.com)."),
    text("linked-wifi-outer", w.outer_identity, "Outer Identity", "Optional, e.g. anonymous."),
    text("linked-wifi-username", w.username, "User Name", "Optional; variables such as %SerialNumber% are filled in per device."),
  ]);
  const e8021x = linked.ethernet || {};
  const ethItf = h("select", { id: "linked-ethernet-interface" },
    h("option", { value: "global" }, "Every Ethernet interface"),
    platform === "macos" ? h("option", { value: "first" }, "The first Ethernet interface") : null);
  ethItf.value = e8021x.interface === "first" && platform === "macos" ? "first" : "global";
  const useEthernet = useBox("ethernet", "Ethernet (802.1X)",
    platform === "ios" ? "EAP-TLS on wired networks (iOS and iPadOS 17 or later)." : "EAP-TLS on wired networks.", [
      field("linked-ethernet-interface", "Interface", ethItf),
      text("linked-ethernet-servers", joinList(e8021x.trusted_server_names), "Trusted Server Names",
        "The RADIUS server's certificate names, separated by commas."),
      text("linked-ethernet-outer", e8021x.outer_identity, "Outer Identity", "Optional."),
      text("linked-ethernet-username", e8021x.username, "User Name", "Optional."),
    ]);
  const v = linked.vpn || {};
  const useVpn = useBox("vpn", "VPN (IKEv2)", "IKEv2 with certificate authentication.", [
    text("linked-vpn-name", v.name, "Connection Name"),
    text("linked-vpn-server", v.server, "Server", "Host name or IP address, e.g. vpn.example.com."),
    text("linked-vpn-remote", v.remote_identifier, "Remote Identifier", "The server's IKE identity, usually its host name."),
    text("linked-vpn-local", v.local_identifier, "Local Identifier", "The device's IKE identity, e.g. %SerialNumber% or the certificate's common name."),
    text("linked-vpn-issuer", v.server_certificate_issuer_common_name, "Server Certificate Issuer", "Optional: the common name of the CA that issued the server's certificate."),
    text("linked-vpn-server-cn", v.server_certificate_common_name, "Server Certificate Name", "Optional: the common name of the server's certificate."),
  ]);
  const linkedSection = h("section", { class: "field wide linked-section", "aria-labelledby": "linked-title" },
    h("h2", { id: "linked-title" }, "Use this certificate for"),
    h("p", { class: "help" }, "These payloads travel in the same profile and name the SCEP certificate, which is how Wi-Fi, Ethernet and VPN can use it."),
    useWifi.el, useEthernet.el, useVpn.el);
  // --- Declarative Device Management ------------------------------------------------------
  // What the server does (mdm/ddm.c, docs/ddm.md): a "ddm" policy goes as declarations to
  // iOS/iPadOS 17+ and macOS 14+, as the profile to older devices; a user-keychain policy or
  // one with linked payloads stays a profile everywhere, whatever its flag.
  const ddm = h("input", { type: "checkbox", id: "ddm", checked: !!existing?.ddm });
  const ddmWhy = h("p", { id: "ddm-reason", class: "warning", hidden: true, "aria-live": "polite" });
  function ddmBlockers() {
    const why = [];
    if (platform === "macos" && keychain.value === "user") why.push("it installs into the user keychain");
    const linkedOn = [[useWifi, "Wi-Fi"], [useEthernet, "Ethernet"], [useVpn, "VPN"]].filter(([u]) => u.on.checked).map(([, n]) => n);
    if (linkedOn.length) why.push(`it carries linked ${linkedOn.join(", ")} payloads (not declarations yet)`);
    return why;
  }
  function syncDdm() {
    const why = ddmBlockers();
    ddm.disabled = why.length > 0;
    if (why.length) ddm.setAttribute("aria-disabled", "true");
    else ddm.removeAttribute("aria-disabled");
    ddmWhy.textContent = why.length
      ? `Not available: this policy stays a profile on every device because ${why.join(" and ")}.` +
        (ddm.checked ? " The saved flag is kept but has no effect." : "")
      : "";
    ddmWhy.hidden = !why.length;
  }
  keychain.addEventListener("change", syncDdm);
  for (const u of [useWifi, useEthernet, useVpn]) u.on.addEventListener("change", syncDdm);
  ddm.addEventListener("change", syncDdm);
  const ddmField = h("div", { class: "field wide", "data-field": "ddm" },
    h("label", { class: "check" }, ddm, " Deliver declaratively (DDM)"),
    h("p", { class: "help", id: "ddm-help" },
      `${platform === "ios" ? "iPhones and iPads on iOS/iPadOS 17 or later" : "Macs on macOS 14 or later"} get the certificate as declarations ` +
      `(a SCEP credential asset and an identity configuration) and report their state; ${platform === "ios" ? "older iPhones and iPads" : "older Macs"} get the profile. ` +
      "The challenge travels in the asset: use a static challenge."),
    ddmWhy,
    h("p", { class: "field-error", id: "ddm-error", hidden: true }));
  ddm.setAttribute("aria-describedby", "ddm-help ddm-reason ddm-error");

  function linkedBody() {
    const val = (idv) => inputs[idv].value.trim();
    const opt = (o, k, idv) => { if (val(idv)) o[k] = val(idv); };
    const l = {};
    if (useWifi.on.checked) {
      l.wifi = { ssid: val("linked-wifi-ssid"), encryption: wifiEnc.value, hidden: wifiHidden.checked,
        auto_join: wifiAuto.checked, trusted_server_names: splitList(inputs["linked-wifi-servers"].value) };
      opt(l.wifi, "outer_identity", "linked-wifi-outer");
      opt(l.wifi, "username", "linked-wifi-username");
    }
    if (useEthernet.on.checked) {
      l.ethernet = { interface: ethItf.value, trusted_server_names: splitList(inputs["linked-ethernet-servers"].value) };
      opt(l.ethernet, "outer_identity", "linked-ethernet-outer");
      opt(l.ethernet, "username", "linked-ethernet-username");
    }
    if (useVpn.on.checked) {
      l.vpn = { name: val("linked-vpn-name"), server: val("linked-vpn-server"),
        remote_identifier: val("linked-vpn-remote"), local_identifier: val("linked-vpn-local") };
      opt(l.vpn, "server_certificate_issuer_common_name", "linked-vpn-issuer");
      opt(l.vpn, "server_certificate_common_name", "linked-vpn-server-cn");
    }
    return Object.keys(l).length ? l : null;
  }

  // Variables the platform cannot resolve, flagged on their field before saving.
  function checkVariables() {
    const known = new Map(variables.map((v) => [v.name, v]));
    const check = (idv, text, label) => {
      if (!variables.length) return;
      const bad = [];
      for (const m of (text || "").matchAll(VAR_RE)) {
        const v = known.get(m[0]);
        if (!v) bad.push(`${m[0]} is not a variable Scepter knows`);
        else if (v.platforms && !v.platforms.includes(platform)) bad.push(`${m[0]} cannot be resolved on ${plat}`);
      }
      setLocal(idv, bad.length ? `${label}: ${bad.join("; ")}` : "");
    };
    check("subject", subjectText.value, "Subject");
    for (const [key, idv, label] of sanFields) check(idv, setSan.checked ? sanInputs[key].value : "", label);
  }

  // --- Targets: Device Groups and Devices tabs -----------------------------------------
  const et = existing?.targets || {};
  const chosenGroups = new Set(et.groups || et.device_groups || []);
  const chosenDevices = new Set(et.devices || []);
  const targetsErr = h("p", { id: "targets-error", class: "field-error", hidden: true });
  const noTargetWarn = h("div", { id: "no-target-warning", class: "notice warning", role: "alert", hidden: true });

  const groupRows = groups.map((g) => {
    const cb = h("input", { type: "checkbox", id: uid("grp"), checked: chosenGroups.has(g.name), "data-group": g.name });
    cb.addEventListener("change", () => { if (cb.checked) chosenGroups.add(g.name); else chosenGroups.delete(g.name); noTargetWarn.hidden = true; });
    const mix = g.platforms || {};
    const mixText = Object.keys(mix).length ? Object.entries(mix).map(([p, n]) => `${n} ${p}`).join(", ") : "—";
    const mixed = Object.keys(mix).filter((p) => mix[p] > 0).length > 1;
    return h("tr", { "data-group": g.name },
      h("td", {}, cb), h("th", { scope: "row" }, h("label", { for: cb.id }, g.name)),
      h("td", { class: "num" }, g.members ?? "—"),
      h("td", { class: "platform-mix" }, mixText, mixed ? h("span", { class: "badge" }, "mixed") : null));
  });
  const groupsPanel = h("div", { id: "targets", tabindex: "-1", "aria-describedby": "groups-note targets-error" },
    h("p", { class: "help", id: "groups-note" },
      `Groups can mix Macs, iPhones and iPads: a ${plat} policy reaches only the group's ${platform === "ios" ? "iPhones and iPads" : "Macs"}; the others do not get it.`),
    groups.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "list", id: "groups-table" },
        h("caption", { class: "sr-only" }, "Device groups"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Target")),
          h("th", { scope: "col" }, "Group"), h("th", { scope: "col" }, "Members"), h("th", { scope: "col" }, "Platforms"))),
        h("tbody", {}, groupRows)))
      : h("p", { class: "empty" }, "No device groups yet (scepterctl group create)."),
    targetsErr);

  // Devices: searched and paged by the API; only this platform's (iOS: iPhone or iPad).
  const devQ = h("input", { type: "search", id: "device-search", placeholder: "Name, serial number or UDID" });
  const devKind = platform === "ios"
    ? h("select", { id: "device-kind" }, h("option", { value: "ios" }, "iPhone"), h("option", { value: "ipados" }, "iPad"))
    : null;
  const devBody = h("tbody");
  const devInfo = h("span", { class: "help", id: "device-count" });
  const chosenList = h("ul", { class: "chips", id: "chosen-devices", "aria-label": "Selected devices" });
  let devOffset = 0;
  let devSeq = 0;
  let devTimer = null;
  const devPrev = h("button", { type: "button", onclick: () => { devOffset = Math.max(0, devOffset - PAGE); quietly(loadDevices()); } }, "Previous");
  const devNext = h("button", { type: "button", onclick: () => { devOffset += PAGE; quietly(loadDevices()); } }, "Next");
  function renderChosen() {
    clear(chosenList);
    for (const u of chosenDevices) {
      chosenList.append(h("li", {}, h("span", { class: "mono" }, u),
        h("button", { type: "button", class: "ghost", "aria-label": `Remove ${u}`, onclick: () => { chosenDevices.delete(u); renderChosen(); quietly(loadDevices()); } }, "×")));
    }
  }
  async function loadDevices() {
    const mine = ++devSeq;
    const j = await get(`/v1/devices${qs({ q: devQ.value.trim(), platform: devKind ? devKind.value : platform, limit: PAGE, offset: devOffset })}`);
    if (mine !== devSeq) return;
    const list = j.devices || [];
    const total = j.total ?? j.count ?? list.length;
    clear(devBody);
    if (!list.length) devBody.append(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No device matches.")));
    for (const d of list) {
      const nm = d.name || d.device_name || d.udid;
      const cb = h("input", { type: "checkbox", id: uid("dev"), checked: chosenDevices.has(d.udid), "data-udid": d.udid });
      cb.addEventListener("change", () => { if (cb.checked) chosenDevices.add(d.udid); else chosenDevices.delete(d.udid); noTargetWarn.hidden = true; renderChosen(); });
      devBody.append(h("tr", { "data-udid": d.udid, "data-platform": d.platform },
        h("td", {}, cb), h("th", { scope: "row" }, h("label", { for: cb.id }, nm)),
        h("td", {}, d.serial || d.serial_number || "—"), h("td", { class: "mono" }, d.udid),
        h("td", {}, d.model || d.model_name || d.product_name || "—")));
    }
    devInfo.textContent = `${total ? devOffset + 1 : 0}–${devOffset + list.length} of ${total}`;
    devPrev.disabled = devOffset === 0;
    devNext.disabled = devOffset + list.length >= total;
  }
  devQ.addEventListener("input", () => { clearTimeout(devTimer); devTimer = setTimeout(() => { devOffset = 0; quietly(loadDevices()); }, 250); });
  if (devKind) devKind.addEventListener("change", () => { devOffset = 0; quietly(loadDevices()); });
  const devicesPanel = h("div", {},
    h("div", { class: "toolbar" }, h("label", { for: "device-search" }, "Search devices"), devQ,
      devKind ? h("label", { for: "device-kind" }, "Kind") : null, devKind),
    h("p", { class: "help" }, `Only ${platform === "ios" ? "iPhones and iPads" : "Macs"} are listed.`),
    h("div", { class: "table-wrap" }, h("table", { class: "list", id: "devices-table" },
      h("caption", { class: "sr-only" }, "Devices"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Target")),
        h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Serial"), h("th", { scope: "col" }, "UDID"), h("th", { scope: "col" }, "Model"))),
      devBody)),
    h("div", { class: "pager" }, devPrev, devInfo, devNext),
    h("h3", {}, "Selected devices"), chosenList);
  renderChosen();

  // --- The settings panel ----------------------------------------------------------------
  const kuField = h("fieldset", { id: "key-usage", "aria-describedby": "key-usage-error", tabindex: "-1" },
    h("legend", {}, "Key Usage"),
    h("label", { class: "check" }, kuSign, " Signing"),
    h("label", { class: "check" }, kuEnc, " Encryption"), kuErr);
  const settings = h("div", { class: "grid" },
    field("policy-name", "Policy Name", name, `Names are unique. Keep "${DEFAULT_NAME[platform]}" or choose another.`),
    field("policy-notes", "Policy Notes", notes),
    field("fingerprint", "Fingerprint", fp, "The CA certificate's SHA-1 or SHA-256: Base64, or hex with colons, spaces or no delimiters.", fpOut),
    field("challenge", "Challenge", challenge, "The SCEP server's pre-shared secret.", reveal),
    field("key-size", "Key Size", keySize, null, keyWarn),
    h("div", { class: "field wide", "data-field": "subject" },
      h("span", { class: "label", id: "subject-rows-label" }, "Subject"),
      h("div", { role: "group", "aria-labelledby": "subject-rows-label" }, rowsEl, addValue, datalist),
      h("label", { for: "subject" }, "Subject as text"),
      subjectText,
      h("p", { class: "help", id: "subject-help" }, "Each value is an OID or short name (C, O, OU, CN, ...) with its value; variables like %SerialNumber% are filled in per device."),
      h("p", { class: "field-error", id: "subject-error", hidden: true })),
    field("retries", "Retries", retries, "Attempts if the SCEP server answers PENDING."),
    field("retry-delay", "Retry Delay (seconds)", retryDelay),
    h("div", { class: "field" }, h("label", { class: "check" }, extractable, " Extractable Key"),
      h("p", { class: "help" }, "Off: the private key cannot be exported from the device."),
      h("p", { class: "field-error", id: "key-extractable-error", hidden: true })),
    h("div", { class: "field" }, kuField),
    field("scep-url", "URL", url, "The SCEP server's URL."),
    field("scep-name", "Name", scepName, "Optional: the CA's name (some servers serve several)."),
    h("div", { class: "field wide" }, h("label", { class: "check" }, includeRoot, " Include Root Certificate"), rootBox),
    h("div", { class: "field wide" }, h("label", { class: "check" }, setSan, " Set Subject Alternative Name"),
      h("p", { class: "help" }, `Separate several values with commas. Variables marked "not on ${plat}" cannot be resolved for this platform.`), sanBox),
    platform === "macos" ? field("keychain", "Keychain", keychain, "User: the profile goes to each targeted Mac's user channels (the users who signed in), PayloadScope User.") : null,
    platform === "macos" ? h("div", { class: "field" }, h("label", { class: "check" }, allowAll, " Allow All Apps Access"),
      h("p", { class: "help" }, "Every app may use the private key (macOS only)."),
      h("p", { class: "field-error", id: "allow-all-apps-error", hidden: true })) : null,
    ddmField,
    linkedSection);
  subjectText.id = "subject";
  subjectText.setAttribute("aria-describedby", "subject-help subject-error");
  for (const idv of ["policy-name", "policy-notes", "fingerprint", "challenge", "key-size", "subject", "retries",
    "retry-delay", "key-extractable", "key-usage", "scep-url", "scep-name", "root-certificate",
    "san-dns", "san-principal", "san-rfc822", "san-uri", "keychain", "allow-all-apps", "use-wifi",
    "use-ethernet", "use-vpn", "linked-wifi-encryption", "linked-wifi-hidden", "linked-wifi-auto-join",
    "linked-ethernet-interface", "ddm", ...Object.keys(inputs)]) tabOf.set(idv, "settings");
  tabOf.set("targets", "groups");

  tabset = tabs("Policy", [
    { id: "settings", label: "SCEP Profiles", panel: settings },
    { id: "groups", label: "Device Groups", panel: groupsPanel },
    { id: "devices", label: "Devices", panel: devicesPanel },
  ], (tid) => { if (tid === "devices") quietly(loadDevices()); });

  // --- Save ----------------------------------------------------------------------------
  function body() {
    const r = parseFingerprint(fp.value);
    const usage = [];
    if (kuSign.checked) usage.push("signing");
    if (kuEnc.checked) usage.push("encryption");
    const s = {
      url: url.value.trim(),
      key_size: Number(keySize.value),
      retries: Number(retries.value),
      retry_delay: Number(retryDelay.value),
      key_extractable: extractable.checked,
      key_usage: usage,
    };
    if (scepName.value.trim()) s.name = scepName.value.trim();
    if (challenge.value) s.challenge = challenge.value;
    if (r.ok) s.fingerprint = r.base64;
    else if (fp.value.trim()) s.fingerprint = fp.value.trim();
    if (subjectText.value.trim()) s.subject = subjectText.value.trim();
    if (includeRoot.checked && rootB64) s.root_certificate = rootB64;
    if (setSan.checked) {
      const san = {};
      for (const [key] of sanFields) {
        const vals = splitList(sanInputs[key].value);
        if (vals.length) san[key] = oneOrMany(vals);
      }
      if (Object.keys(san).length) s.subject_alt_name = san;
    }
    if (platform === "macos") {
      s.keychain = keychain.value;
      if (allowAll.checked) s.allow_all_apps_access = true;
    }
    const b = { platform, scep: s, targets: { devices: [...chosenDevices], device_groups: [...chosenGroups] } };
    const l = linkedBody();
    if (l) b.linked = l;
    if (name.value.trim()) b.name = name.value.trim();
    b.notes = notes.value;
    b.ddm = ddm.checked;
    return b;
  }

  const saveButton = h("button", { type: "submit", class: "primary", id: "save-policy" }, "Save");
  const saveAnyway = h("button", { type: "button", id: "save-without-targets", onclick: () => save(true) }, "Save without targets");
  noTargetWarn.append(h("p", {}, "This policy has no device groups and no devices: saved like this it takes no effect."),
    h("div", { class: "actions" }, saveAnyway,
      h("button", { type: "button", onclick: () => { noTargetWarn.hidden = true; tabset.select("groups", true); } }, "Choose targets")));

  async function save(confirmedNoTargets) {
    clearServerErrors();
    checkFingerprint();
    checkVariables();
    if (includeRoot.checked && !rootB64 && !errors.has("root-certificate")) setLocal("root-certificate", "Choose the root certificate file, or untick Include Root Certificate.");
    if (!kuSign.checked && !kuEnc.checked) { setLocal("key-usage", "Key Usage: choose Signing, Encryption or both."); }
    else setLocal("key-usage", "");
    if (errors.size) {
      const first = errors.keys().next().value;
      formError.textContent = `Not saved: ${errors.size} field${errors.size === 1 ? " needs" : "s need"} attention.`;
      formError.hidden = false;
      focusField(first);
      return;
    }
    if (!chosenGroups.size && !chosenDevices.size && !confirmedNoTargets) {
      noTargetWarn.hidden = false;
      saveAnyway.focus();
      return;
    }
    noTargetWarn.hidden = true;
    saveButton.disabled = true;
    try {
      const saved = editing
        ? await put(`/v1/policies/${encodeURIComponent(id)}`, body())
        : await post("/v1/policies", body());
      announce(saved.message || `Saved ${saved.name}.`);
      ctx.navigate(`#/policies/${saved.id}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      let shown = false;
      const problems = (e.body && e.body.problems) || (e.field ? [{ field: e.field, message: e.message }] : []);
      for (const p of problems) {
        if (p.severity === "warning") continue;
        const idv = fieldId(p.field);
        if (idv && showError(idv, p.message)) {
          document.getElementById(`${idv}-error`).setAttribute("data-server", "");
          if (!shown) focusField(idv);
          shown = true;
        }
      }
      formError.textContent = shown ? `Not saved: ${e.message}` : `Not saved: ${e.message}${e.field ? ` (${e.field})` : ""}`;
      formError.hidden = false;
      if (!shown) formError.focus();
    } finally {
      saveButton.disabled = false;
    }
  }

  const form = h("form", { class: "policy-form", novalidate: true, "aria-labelledby": "form-title" },
    formError, tabset.el, noTargetWarn,
    h("div", { class: "actions sticky" }, saveButton,
      h("a", { class: "button", href: editing ? `#/policies/${id}` : "#/policies" }, "Cancel")));
  formError.tabIndex = -1;
  form.addEventListener("submit", (e) => { e.preventDefault(); save(false); });

  ctx.view(editing ? `Edit ${existing.name}` : `New ${plat} SCEP Profiles policy`,
    h("div", { class: "page-head" },
      h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, h("a", { href: "#/policies" }, "Policy Management"), ` › New Policy › ${plat}`),
      h("h1", { id: "form-title" }, editing ? `Edit ${existing.name}` : `${plat} SCEP Profiles`)),
    form);
  if (fp.value) checkFingerprint();
  checkVariables();
  syncDdm();
  if (rootB64) describe(rootB64).catch(() => {});
  name.focus();
  return () => { clearTimeout(devTimer); };
}
