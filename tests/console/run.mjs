// The web console, click by click, in Debian's chromium driven by playwright-core: the admin
// guide's SCEP Profiles flow for a Mac and an iOS policy (every field, every bad input on its
// field with nothing saved), the simulated devices installing the profile, edit, preview,
// delete, sign-out, an expired session, CSRF, CSP, the keyboard alone, a phone and dark mode.
// test_console.c starts the servers and passes their addresses in CONSOLE_* variables.
import { createRequire } from "node:module";
import { generateKeyPairSync, createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (test_console.c sets it)`);
  return v;
};
const URL0 = env("CONSOLE_URL");
const URL_SHORT = env("CONSOLE_URL_SHORT_SESSION");
const KEY = env("CONSOLE_API_KEY");
const SCEP_URL = env("CONSOLE_SCEP_URL");
const SCEP_FP = env("CONSOLE_SCEP_FINGERPRINT"); // AA:BB:... SHA-256
const SCEP_CHALLENGE = env("CONSOLE_SCEP_CHALLENGE");
const ROOT_CERT = readFileSync(env("CONSOLE_ROOT_CERT"));
const MACS = JSON.parse(env("CONSOLE_MACS"));
const IPHONES = JSON.parse(env("CONSOLE_IPHONES"));
const SHOTS = env("CONSOLE_SCREENSHOTS");
const require = createRequire(join(env("CONSOLE_NODE_DIR"), "package.json"));
const { chromium, request } = require("playwright-core");

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const T = 30000; // every wait (a loaded 2-core CI machine is slow)
const INSTALL_T = 180000; // devices fetching, enrolling with SCEP and acknowledging
const t0 = Date.now();
const log = (m) => console.log(`console [${String(Math.round((Date.now() - t0) / 1000)).padStart(3)}s] ${m}`);
mkdirSync(SHOTS, { recursive: true });

const hexToB64 = (hex) => Buffer.from(hex.replace(/[^0-9a-f]/gi, ""), "hex").toString("base64");
const FP_B64 = hexToB64(SCEP_FP);

let browser;
let api; // the same API with the bearer key (scripts keep working)
const pageErrors = [];
const openPages = []; // screenshotted when a step fails

async function newPage(opts = {}) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true, baseURL: opts.url || URL0, viewport: opts.viewport || DESKTOP,
    colorScheme: opts.colorScheme || "light", isMobile: opts.viewport === PHONE, hasTouch: opts.viewport === PHONE,
  });
  context.setDefaultTimeout(T);
  context.setDefaultNavigationTimeout(T);
  const page = await context.newPage();
  openPages.push([opts.name || "page", page]);
  page.on("pageerror", (e) => pageErrors.push(`${opts.name || "page"}: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/Content Security Policy|Failed to load resource/.test(m.text())) {
      pageErrors.push(`${opts.name || "page"}: console error: ${m.text()}`);
    }
  });
  return page;
}

async function shot(page, name) {
  const vp = page.viewportSize();
  const size = vp.width <= 400 ? "phone" : "desktop";
  const scheme = await page.evaluate(() => (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
  await page.screenshot({ path: join(SHOTS, `${name}-${size}${scheme === "dark" ? "-dark" : ""}.png`), fullPage: false, timeout: T });
}

async function step(name, fn) {
  log(`» ${name}`);
  try {
    await fn();
  } catch (e) {
    e.message = `${name}: ${e.message}`;
    throw e;
  }
}

async function policyCount() {
  const r = await api.get("/v1/policies?limit=1000");
  assert.equal(r.status(), 200, await r.text());
  const j = await r.json();
  return (j.policies || []).length;
}

async function signIn(page, key = KEY) {
  await page.goto("/console/");
  await page.getByLabel("Operator API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
}

async function openPolicyManagement(page) {
  const menu = page.locator("#menu-toggle");
  if (await menu.isVisible()) await menu.click();
  const dm = page.getByRole("button", { name: "Device Management" });
  if ((await dm.getAttribute("aria-expanded")) !== "true") await dm.click();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Policy Management" }).click();
  await page.getByRole("heading", { level: 1, name: "Policy Management", exact: true }).waitFor();
}

// The error shown on a field (waits until it says what re matches) and the field marked.
async function fieldError(page, id, re) {
  const e = page.locator(`#${id}-error`).filter({ hasText: re });
  await e.waitFor({ state: "visible" });
  assert.equal(await page.locator(`#${id}`).getAttribute("aria-invalid"), "true", `#${id} is marked invalid`);
  return (await e.textContent()) || "";
}

async function noFieldError(page, id) {
  await page.locator(`#${id}-error`).waitFor({ state: "hidden" });
}

async function uploadRoot(page, file) {
  await page.locator("#root-certificate").setInputFiles(file);
}

function privateKeyBundle() {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const certPem = `-----BEGIN CERTIFICATE-----\n${ROOT_CERT.toString("base64").match(/.{1,64}/g).join("\n")}\n-----END CERTIFICATE-----\n`;
  return Buffer.from(certPem + privateKey.export({ type: "pkcs8", format: "pem" }));
}

// Wait until every listed device shows "installed" on the policy page (the page follows them).
async function waitInstalled(page, udids) {
  for (const u of udids) {
    await page.locator(`#status-table tr[data-udid="${u}"][data-state="installed"]`).waitFor({ timeout: INSTALL_T });
  }
}

// Fill the SCEP Profiles form the way the guide lists the fields.
async function fillGuide(page, { platform, notes, extractable }) {
  // Fingerprint: a wrong length is flagged as you type; hex with colons is understood.
  const fp = page.locator("#fingerprint");
  await fp.pressSequentially(SCEP_FP.slice(0, 8), { timeout: 60000 });
  await fieldError(page, "fingerprint", /hex digits/);
  await fp.fill("");
  if (platform === "macos") {
    await fp.pressSequentially(SCEP_FP, { timeout: 120000 });
  } else {
    await fp.fill(SCEP_FP.replace(/:/g, " ").toLowerCase()); // spaces, lower case
  }
  await noFieldError(page, "fingerprint");
  assert.equal(await page.locator("#fingerprint-algorithm").textContent(), "SHA-256");
  assert.equal(await page.locator("#fingerprint-base64").textContent(), FP_B64);
  // A SHA-1 (40 digits, no delimiters) is understood as SHA-1.
  await fp.fill("00112233445566778899aabbccddeeff00112233");
  assert.equal(await page.locator("#fingerprint-algorithm").textContent(), "SHA-1");
  await fp.fill(platform === "macos" ? SCEP_FP : FP_B64); // Base64 as typed
  assert.equal(await page.locator("#fingerprint-base64").textContent(), FP_B64);

  // Challenge, masked with reveal.
  const ch = page.locator("#challenge");
  await ch.fill(SCEP_CHALLENGE);
  assert.equal(await ch.getAttribute("type"), "password");
  await page.locator("#challenge-reveal").click();
  assert.equal(await ch.getAttribute("type"), "text");
  assert.equal(await page.locator("#challenge-reveal").getAttribute("aria-pressed"), "true");
  await page.locator("#challenge-reveal").click();
  assert.equal(await ch.getAttribute("type"), "password");

  // Key Size: 1024 by default, with the weak-key warning; 2048 clears it.
  assert.equal(await page.locator("#key-size").inputValue(), "1024");
  await page.locator("#key-size-warning").waitFor({ state: "visible" });
  await page.locator("#key-size").selectOption("2048");
  await page.locator("#key-size-warning").waitFor({ state: "hidden" });

  // Subject: three Add Value rows compose the statement; the text edits the rows.
  for (const [oid, value] of [["C", "US"], ["O", "ABCEnterprise"], ["CN", "foo"]]) {
    await page.getByRole("button", { name: "Add Value" }).click();
    await page.locator(".subject-row:last-child input.oid").fill(oid);
    await page.locator(".subject-row:last-child input.val").fill(value);
  }
  assert.equal(await page.locator("#subject").inputValue(), "/C=US/O=ABCEnterprise/CN=foo/");
  await page.locator("#subject").fill("/C=US/O=ABCEnterprise/OU=Lab/CN=foo/");
  assert.equal(await page.locator(".subject-row").count(), 4);
  await page.getByRole("button", { name: "Remove subject value 3" }).click();
  assert.equal(await page.locator("#subject").inputValue(), "/C=US/O=ABCEnterprise/CN=foo/");
  // One subject per device (the SCEP server refuses a second certificate for one subject).
  await page.locator(".subject-row:last-child input.val").fill("%SerialNumber%");
  assert.equal(await page.locator("#subject").inputValue(), "/C=US/O=ABCEnterprise/CN=%SerialNumber%/");

  // Retries 3, Retry Delay 10 s, Extractable Key off by default, Key Usage, URL, Name.
  assert.equal(await page.locator("#retries").inputValue(), "3");
  assert.equal(await page.locator("#retry-delay").inputValue(), "10");
  assert.equal(await page.locator("#key-extractable").isChecked(), false);
  if (extractable) await page.getByLabel("Extractable Key").check();
  await page.getByLabel("Signing").check();
  await page.getByLabel("Encryption").check();
  await page.getByLabel("URL", { exact: true }).fill(SCEP_URL);
  await page.getByLabel("Name", { exact: true }).fill("CORP-CA");
  await page.locator("#policy-notes").fill(notes);

  // Include Root Certificate: refused on the field when too big, not a certificate, or
  // holding a private key; a real one is described.
  await page.getByLabel("Include Root Certificate").check();
  await uploadRoot(page, { name: "huge.cer", mimeType: "application/pkix-cert", buffer: Buffer.alloc(1100 * 1024, 0x30) });
  await fieldError(page, "root-certificate", /1 MB/);
  await uploadRoot(page, { name: "notes.crt", mimeType: "text/plain", buffer: Buffer.from("just some text\n") });
  await fieldError(page, "root-certificate", /not a certificate/);
  await uploadRoot(page, { name: "bundle.crt", mimeType: "application/x-pem-file", buffer: privateKeyBundle() });
  await fieldError(page, "root-certificate", /private key/);
  // DER-looking bytes pass the page's check; the server refuses them, shown on the field.
  await uploadRoot(page, { name: "garbage.cer", mimeType: "application/pkix-cert", buffer: Buffer.from([0x30, 0x03, 1, 2, 3]) });
  await fieldError(page, "root-certificate", /garbage\.cer: .*certificate/i);
  await uploadRoot(page, { name: "corp-root.cer", mimeType: "application/pkix-cert", buffer: ROOT_CERT });
  await noFieldError(page, "root-certificate");
  const sha = createHash("sha256").update(ROOT_CERT).digest("hex");
  const shown = (await page.locator('#root-certificate-info [data-cert="sha256"]').textContent()).replace(/[^0-9a-f]/gi, "").toLowerCase();
  assert.equal(shown, sha, "the page shows the uploaded certificate's SHA-256");
  for (const k of ["subject", "issuer", "not_after"]) {
    assert.ok(((await page.locator(`#root-certificate-info [data-cert="${k}"]`).textContent()) || "").length > 2, `${k} shown`);
  }
}

// The variables of GET /v1/policy-variables for a platform, and the picker's options.
async function checkPicker(page, platform) {
  const r = await api.get("/v1/policy-variables");
  assert.equal(r.status(), 200, await r.text());
  const vars = (await r.json()).variables;
  assert.ok(vars.length >= 5, "the server lists its variables");
  const opts = await page.locator("#san-dns-var option").evaluateAll((os) => os.map((o) => [o.value, o.dataset.supported]).filter((x) => x[0]));
  assert.deepEqual(opts.map((o) => o[0]).sort(), vars.map((v) => v.name).sort(), "the picker lists the server's variables");
  for (const v of vars) {
    const supported = !v.platforms || v.platforms.includes(platform);
    assert.equal(opts.find((o) => o[0] === v.name)[1], String(supported), `${v.name} marked for ${platform}`);
  }
  return { vars, opts };
}

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CONSOLE_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: 60000,
    args: [...(process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : []), "--disable-gpu", "--disable-dev-shm-usage"],
  });
  api = await request.newContext({ baseURL: URL0, ignoreHTTPSErrors: true, extraHTTPHeaders: { Authorization: `Bearer ${KEY}` }, timeout: T });
  const anon = await request.newContext({ baseURL: URL0, ignoreHTTPSErrors: true, timeout: T });

  await step("console responses carry CSP, nosniff and Referrer-Policy; / redirects a browser", async () => {
    for (const p of ["/console/", "/console/js/app.js", "/console/css/console.css"]) {
      const r = await anon.get(p);
      assert.equal(r.status(), 200, p);
      const hd = r.headers();
      const csp = hd["content-security-policy"] || "";
      for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) {
        assert.ok(csp.includes(d), `${p}: CSP has ${d}: ${csp}`);
      }
      assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), `${p}: no unsafe-* in the CSP`);
      assert.equal(hd["x-content-type-options"], "nosniff", p);
      assert.ok(hd["referrer-policy"], `${p}: Referrer-Policy`);
    }
    const r = await anon.get("/", { headers: { Accept: "text/html,application/xhtml+xml" }, maxRedirects: 0 });
    assert.equal(r.status(), 302);
    assert.equal(r.headers().location, "/console/");
  });

  const page = await newPage({ name: "main" });
  await step("sign in with the operator API key", async () => {
    await page.goto("/");
    await page.waitForURL(/\/console\/$/);
    await page.getByRole("heading", { name: "Sign in to Scepter" }).waitFor();
    await shot(page, "01-sign-in");
    await page.getByLabel("Operator API key").fill("not-the-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await fieldError(page, "api-key", /refused/);
    await page.getByLabel("Operator API key").fill(KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    const cookie = (await page.context().cookies()).find((c) => c.name === "scepter_session");
    assert.ok(cookie, "the session cookie is set");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.sameSite, "Strict");
    assert.equal(cookie.path, "/");
    await shot(page, "02-home");
  });

  await step("Device Management → Policy Management → the All tab", async () => {
    await openPolicyManagement(page);
    assert.equal(await page.getByRole("tab", { name: "All" }).getAttribute("aria-selected"), "true");
    await page.getByText("No policies yet").waitFor();
  });

  await step("(+) → New Policy → Mac and iOS tabs list SCEP Profiles", async () => {
    await page.getByRole("button", { name: "New policy" }).click();
    const dlg = page.getByRole("dialog", { name: "New Policy" });
    await dlg.waitFor();
    await dlg.getByRole("tab", { name: "iOS" }).click();
    await dlg.getByRole("button", { name: "configure SCEP Profiles for iOS" }).waitFor();
    await dlg.getByRole("tab", { name: "Mac" }).click();
    await dlg.getByRole("tabpanel").getByText("SCEP Profiles", { exact: true }).waitFor();
    await shot(page, "03-new-policy");
    await dlg.getByRole("button", { name: "configure SCEP Profiles for Mac" }).click();
    await page.getByRole("heading", { level: 1, name: "Mac SCEP Profiles", exact: true }).waitFor();
  });

  let macPolicyId;
  await step("Mac: every field of the guide", async () => {
    assert.equal(await page.getByLabel("Policy Name").inputValue(), "Mac SCEP Profiles", "the default name");
    await fillGuide(page, { platform: "macos", notes: "Wi-Fi identities for the lab Macs", extractable: true });
    await page.getByLabel("Set Subject Alternative Name").check();
    const { vars } = await checkPicker(page, "macos");
    assert.ok(vars.some((v) => v.name === "%SerialNumber%"));
    await page.locator("#san-dns").fill("mac-.corp.example.com");
    await page.locator("#san-dns").evaluate((el) => el.setSelectionRange(4, 4));
    await page.locator("#san-dns-var").selectOption("%SerialNumber%");
    assert.equal(await page.locator("#san-dns").inputValue(), "mac-%SerialNumber%.corp.example.com");
    await page.locator("#san-principal").fill("host/%ComputerName%");
    await page.locator("#san-rfc822").fill("it@example.com");
    await page.locator("#san-uri").fill("https://example.com/device/%UDID%");
    await noFieldError(page, "san-principal");
    await shot(page, "04-policy-form");
  });

  await step("Mac: Device Groups tab (a mixed group, member counts, platform mix, the note)", async () => {
    await page.getByRole("tab", { name: "Device Groups" }).click();
    const row = page.locator('#groups-table tr[data-group="Mixed Lab"]');
    await row.waitFor();
    assert.match(await row.textContent(), /4/);
    const mix = await row.locator(".platform-mix").textContent();
    assert.match(mix, /2 macos/);
    assert.match(mix, /2 ios/);
    assert.match(mix, /mixed/);
    assert.match(await page.locator("#groups-note").textContent(), /reaches only the group's Macs/);
    await row.getByRole("checkbox").check();
    await shot(page, "05-device-groups");
  });

  await step("Mac: Devices tab (only Macs; search by name, serial and UDID)", async () => {
    await page.getByRole("tab", { name: "Devices" }).click();
    await page.locator("#devices-table tbody tr[data-udid]").first().waitFor();
    const plats = await page.locator("#devices-table tbody tr[data-udid]").evaluateAll((rs) => rs.map((r) => r.dataset.platform));
    assert.deepEqual([...new Set(plats)], ["macos"], "only Macs are listed");
    assert.equal(plats.length, MACS.length);
    const target = MACS[2];
    for (const q of [target.name, target.serial, target.udid]) {
      await page.locator("#device-search").fill(q);
      await page.waitForFunction((u) => {
        const rs = document.querySelectorAll("#devices-table tbody tr[data-udid]");
        return rs.length === 1 && rs[0].dataset.udid === u;
      }, target.udid, { timeout: T });
    }
    await page.locator(`#devices-table tr[data-udid="${target.udid}"]`).getByRole("checkbox").check();
    await page.locator("#chosen-devices").getByText(target.udid).waitFor();
    await shot(page, "06-devices");
  });

  await step("Mac: Use this certificate for Wi-Fi and VPN; a bad VPN server stays on its field", async () => {
    await page.getByRole("tab", { name: "SCEP Profiles" }).click();
    await page.locator("#use-wifi").check();
    await page.locator("#linked-wifi-ssid").fill("CorpNet");
    await page.locator("#linked-wifi-encryption").selectOption("WPA3");
    await page.locator("#linked-wifi-servers").fill("radius.example.com, *.radius.example.com");
    await page.locator("#use-vpn").check();
    await page.locator("#linked-vpn-name").fill("Corp VPN");
    await page.locator("#linked-vpn-server").fill("https://vpn.example.com/");
    await page.locator("#linked-vpn-remote").fill("vpn.example.com");
    await page.locator("#linked-vpn-local").fill("%SerialNumber%");
    const before = await policyCount();
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await fieldError(page, "linked-vpn-server", /not a host name or IP address/);
    assert.equal(await policyCount(), before, "nothing saved");
    await page.locator("#linked-vpn-server").fill("vpn.example.com");
    await shot(page, "06b-linked-payloads");
  });

  await step("Mac: Save → the policy page; the Macs install the profile", async () => {
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.waitForURL(/#\/policies\/\d+$/);
    await page.getByRole("heading", { level: 1, name: "Mac SCEP Profiles", exact: true }).waitFor();
    macPolicyId = page.url().match(/#\/policies\/(\d+)/)[1];
    // The group's 2 Macs (not its iPhones) and the Mac chosen directly.
    const expected = [MACS[0].udid, MACS[1].udid, MACS[2].udid];
    await waitInstalled(page, expected);
    const rows = await page.locator("#status-table tbody tr[data-udid]").evaluateAll((rs) => rs.map((r) => r.dataset.udid));
    assert.deepEqual(rows.sort(), expected.sort(), "exactly the targeted Macs");
    await page.locator("#status-counts").getByText("3 installed").waitFor();
    await shot(page, "07-policy-installed");
  });

  await step("Mac: the saved policy carries its linked Wi-Fi and VPN", async () => {
    const r = await api.get(`/v1/policies/${macPolicyId}`);
    assert.equal(r.status(), 200, await r.text());
    const p = await r.json();
    assert.equal(p.linked.wifi.ssid, "CorpNet");
    assert.equal(p.linked.wifi.encryption, "WPA3");
    assert.deepEqual(p.linked.wifi.trusted_server_names, ["radius.example.com", "*.radius.example.com"]);
    assert.equal(p.linked.vpn.server, "vpn.example.com");
    assert.equal(p.linked.vpn.local_identifier, "%SerialNumber%");
    assert.equal(p.linked.ethernet, undefined, "Ethernet was not ticked");
  });

  let iosPolicyId;
  await step("iOS: New Policy → iOS → configure; the bad inputs stay on their fields, nothing saved", async () => {
    await openPolicyManagement(page);
    await page.getByRole("button", { name: "New policy" }).click();
    const dlg = page.getByRole("dialog", { name: "New Policy" });
    await dlg.getByRole("tab", { name: "iOS" }).click();
    await dlg.getByRole("button", { name: "configure SCEP Profiles for iOS" }).click();
    await page.getByRole("heading", { level: 1, name: "iOS SCEP Profiles", exact: true }).waitFor();
    assert.equal(await page.getByLabel("Policy Name").inputValue(), "iOS SCEP Profiles");
    await fillGuide(page, { platform: "ios", notes: "iPhone certificates", extractable: false });
    const before = await policyCount();

    // A variable iOS cannot resolve, flagged before saving.
    await page.getByLabel("Set Subject Alternative Name").check();
    const { vars, opts } = await checkPicker(page, "ios");
    const macOnly = vars.find((v) => v.platforms && !v.platforms.includes("ios"));
    assert.ok(macOnly, "the server names variables iOS cannot resolve");
    assert.equal(opts.find((o) => o[0] === macOnly.name)[1], "false", "the picker marks it");
    await page.locator("#san-dns-var").selectOption(macOnly.name);
    await fieldError(page, "san-dns", /cannot be resolved on iOS/);
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.locator("#form-error").waitFor({ state: "visible" });
    assert.equal(await policyCount(), before, "nothing saved with an unresolvable variable");
    await page.locator("#san-dns").fill("");
    await page.locator("#san-dns-var").selectOption("%SerialNumber%");
    await noFieldError(page, "san-dns");

    // A bad fingerprint length.
    await page.locator("#fingerprint").fill(SCEP_FP.slice(0, -3));
    await fieldError(page, "fingerprint", /hex digits/);
    await page.getByRole("button", { name: "Save", exact: true }).click();
    assert.equal(await policyCount(), before, "nothing saved with a bad fingerprint");
    await page.locator("#fingerprint").fill(FP_B64);
    await noFieldError(page, "fingerprint");

    // No target: the policy would take no effect.
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.locator("#no-target-warning").waitFor({ state: "visible" });
    assert.match(await page.locator("#no-target-warning").textContent(), /takes no effect/);
    assert.equal(await policyCount(), before, "nothing saved without a target");
    await shot(page, "08-no-target-warning");

    // Targets: the mixed group (its iPhones) and one iPhone directly.
    await page.getByRole("tab", { name: "Device Groups" }).click();
    assert.match(await page.locator("#groups-note").textContent(), /reaches only the group's iPhones and iPads/);
    await page.locator('#groups-table tr[data-group="Mixed Lab"]').getByRole("checkbox").check();
    await page.getByRole("tab", { name: "Devices" }).click();
    await page.locator("#devices-table tbody tr[data-udid]").first().waitFor();
    const plats = await page.locator("#devices-table tbody tr[data-udid]").evaluateAll((rs) => rs.map((r) => r.dataset.platform));
    assert.deepEqual([...new Set(plats)], ["ios"], "only iPhones are listed");
    await page.locator("#device-search").fill(IPHONES[2].serial);
    await page.locator(`#devices-table tr[data-udid="${IPHONES[2].udid}"]`).getByRole("checkbox").check();

    // A duplicate name (names are unique per platform): refused by the server (409), shown
    // on the name field.
    const other = await api.post("/v1/policies", { data: { name: "iOS Lab", platform: "ios", scep: { url: SCEP_URL } } });
    assert.equal(other.status(), 201, await other.text());
    const otherId = (await other.json()).id;
    await page.getByRole("tab", { name: "SCEP Profiles" }).click();
    await page.getByLabel("Policy Name").fill("iOS Lab");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await fieldError(page, "policy-name", /./);
    assert.equal(await policyCount(), before + 1, "nothing saved with a duplicate name");
    await shot(page, "09-duplicate-name");
    assert.ok([200, 204].includes((await api.delete(`/v1/policies/${otherId}`)).status()));
    await page.getByLabel("Policy Name").fill("iOS SCEP Profiles");
  });

  await step("iOS: Save → the iPhones of the mixed group and the one chosen install it", async () => {
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.waitForURL(/#\/policies\/\d+$/);
    await page.getByRole("heading", { level: 1, name: "iOS SCEP Profiles", exact: true }).waitFor();
    iosPolicyId = page.url().match(/#\/policies\/(\d+)/)[1];
    const expected = [IPHONES[0].udid, IPHONES[1].udid, IPHONES[2].udid];
    await waitInstalled(page, expected);
    const rows = await page.locator("#status-table tbody tr[data-udid]").evaluateAll((rs) => rs.map((r) => r.dataset.udid));
    assert.deepEqual(rows.sort(), expected.sort(), "exactly the targeted iPhones");
  });

  await step("preview the .mobileconfig one device would receive", async () => {
    await page.locator("#preview-device").selectOption(IPHONES[2].udid);
    await page.getByRole("button", { name: "Preview .mobileconfig" }).click();
    const out = page.locator("#preview-output");
    await out.waitFor();
    const text = await out.textContent();
    assert.match(text, /<plist/);
    assert.match(text, /com\.apple\.security\.scep/);
    assert.ok(text.includes(IPHONES[2].serial), "variables resolved for the device (its serial number)");
    await shot(page, "10-preview");
  });

  await step("edit: change the notes and the subject; the page shows the saved policy", async () => {
    await page.getByRole("link", { name: "Edit" }).click();
    await page.getByRole("heading", { level: 1, name: "Edit iOS SCEP Profiles", exact: true }).waitFor();
    assert.equal(await page.locator("#challenge").inputValue(), "********", "the challenge stays masked");
    await page.locator("#policy-notes").fill("iPhone certificates, reviewed");
    // A new subject: the update re-installs the profile, and the SCEP server issues one
    // certificate per subject.
    await page.locator("#subject").fill("/C=US/O=ABCEnterprise/OU=Reviewed/CN=%SerialNumber%/");
    assert.equal(await page.locator(".subject-row").count(), 4);
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.waitForURL(/#\/policies\/\d+$/);
    await page.getByRole("heading", { level: 1, name: "iOS SCEP Profiles", exact: true }).waitFor();
    await page.getByText("iPhone certificates, reviewed").waitFor();
    const r = await api.get(`/v1/policies/${iosPolicyId}?show_secrets=true`);
    assert.equal((await r.json()).scep.challenge, SCEP_CHALLENGE, "the masked challenge kept the secret");
    await waitInstalled(page, [IPHONES[0].udid, IPHONES[1].udid, IPHONES[2].udid]);
  });

  await step("the All tab: both policies with counts; search and sort", async () => {
    await openPolicyManagement(page);
    const rows = page.locator("table.list tbody tr[data-policy-id]");
    await page.waitForFunction(() => document.querySelectorAll("table.list tbody tr[data-policy-id]").length === 2);
    const mac = page.locator(`tr[data-policy-id="${macPolicyId}"]`);
    assert.match(await mac.textContent(), /Mac SCEP Profiles/);
    assert.equal((await mac.locator("td.num").first().textContent()).trim(), "3", "installed count");
    await page.locator("#policy-search").fill("iOS");
    await page.waitForFunction(() => document.querySelectorAll("table.list tbody tr[data-policy-id]").length === 1);
    assert.match(await rows.first().textContent(), /iOS SCEP Profiles/);
    await page.locator("#policy-search").fill("");
    await page.waitForFunction(() => document.querySelectorAll("table.list tbody tr[data-policy-id]").length === 2);
    const names = () => rows.locator("a.policy-name").allTextContents();
    const asc = await names();
    assert.equal(await page.locator('th:has(button[data-sort="name"])').getAttribute("aria-sort"), "ascending");
    await page.locator('button.sort[data-sort="name"]').click(); // now descending
    await page.waitForFunction((first) => document.querySelector("table.list tbody tr[data-policy-id] a.policy-name").textContent !== first, asc[0]);
    assert.deepEqual(await names(), [...asc].reverse(), "the server sorts by name, both ways");
    assert.equal(await page.locator('th:has(button[data-sort="name"])').getAttribute("aria-sort"), "descending");
    await page.locator('button.sort[data-sort="platform"]').click();
    await page.waitForFunction(() => document.querySelector('th[aria-sort="ascending"] button[data-sort="platform"]'));
    await page.waitForFunction(() => document.querySelector("table.list tbody tr[data-policy-id] td").textContent === "iOS");
    await shot(page, "11-policies");
  });

  await step("a state-changing request without the CSRF token is refused", async () => {
    const r = await page.evaluate(async () => {
      const res = await fetch("/v1/policies", {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ platform: "macos", scep: { url: "https://x.example/scep" } }),
      });
      return { status: res.status, body: await res.json().catch(() => null) };
    });
    assert.equal(r.status, 403);
    assert.equal(r.body.field, "X-CSRF-Token");
    const d = await page.evaluate(async (id) => (await fetch(`/v1/policies/${id}`, { method: "DELETE", credentials: "same-origin" })).status, macPolicyId);
    assert.equal(d, 403);
    const bearer = await api.get("/v1/policies");
    assert.equal(bearer.status(), 200, "bearer keys keep working for scripts");
  });

  await step("a policy named <img src=x onerror=...> renders as text; CSP blocks inline script", async () => {
    const evil = '<img src=x onerror="window.__xss=1">';
    const r = await api.post("/v1/policies", { data: { name: evil, platform: "macos", scep: { url: SCEP_URL } } });
    assert.equal(r.status(), 201, await r.text());
    const evilId = (await r.json()).id;
    await page.evaluate(() => {
      window.__csp = [];
      document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective));
    });
    await page.locator("#policy-search").fill("onerror");
    const link = page.locator(`tr[data-policy-id="${evilId}"] a.policy-name`);
    await link.waitFor();
    assert.equal(await link.textContent(), evil, "the name is text");
    assert.equal(await page.locator("table.list img").count(), 0, "no element was made from the name");
    await link.click();
    await page.locator("#policy-title").waitFor();
    assert.equal(await page.locator("#policy-title").textContent(), evil);
    // Inline script injected into the page is blocked, and reported.
    await page.evaluate(() => {
      const s = document.createElement("script");
      s.textContent = "window.__inline = 1";
      document.body.append(s);
      const d = document.createElement("div");
      d.innerHTML = '<img src="x" onerror="window.__handler = 1">';
      document.body.append(d);
    });
    await page.waitForFunction(() => window.__csp.length >= 2, null, { timeout: T });
    const state = await page.evaluate(() => ({ xss: window.__xss, inline: window.__inline, handler: window.__handler, csp: window.__csp }));
    assert.equal(state.xss, undefined);
    assert.equal(state.inline, undefined, "inline script blocked");
    assert.equal(state.handler, undefined, "inline event handler blocked");
    assert.ok(state.csp.every((d) => d.startsWith("script-src")), JSON.stringify(state.csp));
    const del = await api.delete(`/v1/policies/${evilId}`);
    assert.ok([200, 204].includes(del.status()));
  });

  await step("delete with the confirmation spelling out RemoveProfile", async () => {
    await page.goto(`/console/#/policies/${macPolicyId}`);
    await page.getByRole("heading", { level: 1, name: "Mac SCEP Profiles", exact: true }).waitFor();
    await page.getByRole("button", { name: "Delete", exact: true }).click();
    const dlg = page.locator("#confirm-delete");
    await dlg.waitFor();
    const text = await dlg.locator("#delete-consequence").textContent();
    assert.match(text, /RemoveProfile/);
    assert.match(text, /3 devices/);
    await shot(page, "12-delete-confirm");
    await dlg.getByRole("button", { name: "Cancel" }).click();
    assert.equal((await api.get(`/v1/policies/${macPolicyId}`)).status(), 200, "Cancel deletes nothing");
    await page.getByRole("button", { name: "Delete", exact: true }).click();
    await page.locator("#confirm-delete").getByRole("button", { name: "Delete policy" }).click();
    await page.getByRole("heading", { level: 1, name: "Policy Management", exact: true }).waitFor();
    assert.equal((await api.get(`/v1/policies/${macPolicyId}`)).status(), 404);
  });

  // Declarative Device Management through the form: iOS 17+ iPhones get declarations and
  // report their state, older ones the profile (the simulator's iPhones run iOS 16 to 18).
  const major = (v) => Number(String(v || "0").split(".")[0]);
  const ddmPhones = IPHONES.filter((p) => major(p.os) >= 17);
  const profilePhones = IPHONES.filter((p) => major(p.os) < 17);
  let ddmPolicyId;
  await step("DDM: the checkbox is unavailable, with its reason, for a user-keychain or linked-payload policy", async () => {
    await page.goto("/console/#/policies/new/macos");
    await page.getByRole("heading", { level: 1, name: "Mac SCEP Profiles", exact: true }).waitFor();
    const box = page.getByLabel("Deliver declaratively (DDM)");
    assert.equal(await box.isEnabled(), true);
    assert.match(await page.locator("#ddm-help").textContent(), /macOS 14 or later/);
    await page.locator("#keychain").selectOption("user");
    assert.equal(await box.isEnabled(), false, "a user-keychain policy stays a profile");
    assert.match(await page.locator("#ddm-reason").textContent(), /user keychain/);
    await page.locator("#ddm").evaluate((el) => el.scrollIntoView({ block: "center" }));
    await shot(page, "policy-ddm-unavailable");
    await page.locator("#keychain").selectOption("device");
    assert.equal(await box.isEnabled(), true);
    await page.locator("#ddm-reason").waitFor({ state: "hidden" });
    await page.locator("#use-wifi").check();
    assert.equal(await box.isEnabled(), false, "linked payloads are not declarations yet");
    assert.match(await page.locator("#ddm-reason").textContent(), /linked Wi-Fi/);
    await page.locator("#use-wifi").uncheck();
    assert.equal(await box.isEnabled(), true);
  });

  await step("DDM: a new iOS policy with Deliver declaratively ticked; the flag is there after a reload", async () => {
    assert.ok(ddmPhones.length >= 1, `an iOS 17+ iPhone among ${JSON.stringify(IPHONES)}`);
    await page.goto("/console/#/policies/new/ios");
    await page.getByRole("heading", { level: 1, name: "iOS SCEP Profiles", exact: true }).waitFor();
    await page.getByLabel("Policy Name").fill("iOS DDM Certificates");
    await page.locator("#fingerprint").fill(FP_B64);
    await page.locator("#challenge").fill(SCEP_CHALLENGE);
    await page.locator("#key-size").selectOption("2048");
    // Another subject than the profile policy's (the SCEP server issues one per subject).
    await page.locator("#subject").fill("/O=ABCEnterprise/OU=Declarative/CN=%SerialNumber%/");
    await page.getByLabel("Signing").check();
    await page.getByLabel("URL", { exact: true }).fill(SCEP_URL);
    assert.match(await page.locator("#ddm-help").textContent(), /iOS\/iPadOS 17 or later/);
    await page.getByLabel("Deliver declaratively (DDM)").check();
    await page.getByRole("tab", { name: "Device Groups" }).click();
    await page.locator('#groups-table tr[data-group="Mixed Lab"]').getByRole("checkbox").check();
    await page.getByRole("tab", { name: "Devices" }).click();
    await page.locator("#devices-table tbody tr[data-udid]").first().waitFor();
    await page.locator(`#devices-table tr[data-udid="${IPHONES[2].udid}"]`).getByRole("checkbox").check();
    await page.getByRole("tab", { name: "SCEP Profiles" }).click();
    await page.locator("#ddm").evaluate((el) => el.scrollIntoView({ block: "center" }));
    await shot(page, "policy-ddm-form");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await page.waitForURL(/#\/policies\/\d+$/);
    await page.getByRole("heading", { level: 1, name: "iOS DDM Certificates", exact: true }).waitFor();
    ddmPolicyId = page.url().match(/#\/policies\/(\d+)/)[1];
    const r = await api.get(`/v1/policies/${ddmPolicyId}`);
    assert.equal((await r.json()).ddm, true, "saved as \"ddm\": true");
    await page.reload();
    await page.getByRole("heading", { level: 1, name: "iOS DDM Certificates", exact: true }).waitFor();
    assert.equal(await page.locator("#policy-delivery").getAttribute("data-ddm"), "true");
    assert.match(await page.locator("#policy-delivery").textContent(), /Declarative \(DDM\) on iOS\/iPadOS 17 or later/);
    await page.getByRole("link", { name: "Edit" }).click();
    await page.getByRole("heading", { level: 1, name: "Edit iOS DDM Certificates", exact: true }).waitFor();
    assert.equal(await page.getByLabel("Deliver declaratively (DDM)").isChecked(), true, "the form shows the saved flag");
    await page.getByRole("link", { name: "Cancel" }).click();
    await page.getByRole("heading", { level: 1, name: "iOS DDM Certificates", exact: true }).waitFor();
  });

  await step("DDM: per device, the channel beside the command's state; iOS 17+ report active; the counts", async () => {
    for (const p of ddmPhones) {
      await page.locator(`#status-table tr[data-udid="${p.udid}"][data-delivery="ddm"] [data-ddm-state="active"]`).waitFor({ timeout: INSTALL_T });
    }
    for (const p of profilePhones) {
      await page.locator(`#status-table tr[data-udid="${p.udid}"][data-delivery="profile"][data-state="installed"]`).waitFor({ timeout: INSTALL_T });
    }
    const want = `${ddmPhones.length} via DDM: ${ddmPhones.length} active` +
      (profilePhones.length ? ` · ${profilePhones.length} via profile: ${profilePhones.length} installed` : "");
    await page.locator("#delivery-counts").getByText(want, { exact: true }).waitFor({ timeout: INSTALL_T });
    const st = await (await api.get(`/v1/policies/${ddmPolicyId}/status`)).json();
    assert.equal(st.by_delivery.ddm.active, ddmPhones.length, JSON.stringify(st.by_delivery));
    assert.equal(st.by_delivery.profile.devices, profilePhones.length, JSON.stringify(st.by_delivery));
    await page.locator("#status-h").evaluate((el) => el.scrollIntoView());
    await shot(page, "policy-ddm-status");
    // The policy list marks the policy as DDM.
    await openPolicyManagement(page);
    await page.locator(`tr[data-policy-id="${ddmPolicyId}"] [data-ddm]`).waitFor();
    assert.equal(await page.locator(`tr[data-policy-id="${iosPolicyId}"] [data-ddm]`).count(), 0, "the profile policy has no DDM badge");
  });

  await step("DDM: a wrong challenge is reported invalid, with the device's reason, on the policy page", async () => {
    const r = await api.post("/v1/policies", { data: {
      name: "iOS DDM wrong challenge", platform: "ios", ddm: true,
      scep: { url: SCEP_URL, challenge: "not-the-secret", fingerprint: FP_B64, key_size: 2048, subject: "/O=ABCEnterprise/OU=Refused/CN=%SerialNumber%/" },
      targets: { devices: [ddmPhones[0].udid] } } });
    assert.equal(r.status(), 201, await r.text());
    const badId = (await r.json()).id;
    await page.goto(`/console/#/policies/${badId}`);
    const row = page.locator(`#status-table tr[data-udid="${ddmPhones[0].udid}"][data-delivery="ddm"]`);
    await row.locator('[data-ddm-state="invalid"]').waitFor({ timeout: INSTALL_T });
    await row.locator(".ddm-reasons li").first().waitFor();
    assert.match(await row.locator(".ddm-reasons").textContent(), /SCEP/i, "the device's reason is shown");
    await page.locator("#delivery-counts").getByText("1 via DDM: 1 invalid", { exact: true }).waitFor();
    await page.locator("#status-h").evaluate((el) => el.scrollIntoView());
    await shot(page, "policy-ddm-invalid");
    // The device page shows the same: the identity configuration invalid, with the reason.
    await page.goto(`/console/#/devices/${encodeURIComponent(ddmPhones[0].udid)}`);
    const bad = page.locator(`#device-declarations tr[data-identifier$=".identity"][data-valid="invalid"]`);
    await bad.waitFor();
    assert.match(await bad.locator(".chain").textContent(), /SCEP/i);
    assert.ok([200, 204].includes((await api.delete(`/v1/policies/${badId}`)).status()));
  });

  await step("DDM: a device's page lists its declarations and the state it reported", async () => {
    const p = ddmPhones[0];
    const ident = (await (await api.get(`/v1/policies/${ddmPolicyId}`)).json()).payload_identifier;
    await page.goto(`/console/#/devices/${encodeURIComponent(p.udid)}`);
    await page.reload(); // the same address as the last step's: load it again
    const table = page.locator("#device-declarations");
    const identity = table.locator(`tr[data-kind="configuration"][data-identifier="${ident}.identity"][data-valid="valid"]`);
    await identity.waitFor();
    assert.match(await identity.textContent(), /com\.apple\.configuration\.security\.identity/);
    assert.match(await identity.textContent(), /active/);
    await table.locator(`tr[data-kind="asset"][data-identifier="${ident}.scep"]`).waitFor();
    await table.locator(`tr[data-kind="activation"][data-identifier="${ident}.activation"]`).waitFor();
    assert.match(await page.locator("#declarations-summary").textContent(), /reported by the device/);
    await page.locator("#declarations").scrollIntoViewIfNeeded();
    await shot(page, "device-declarations");
    if (profilePhones.length) {
      await page.goto(`/console/#/devices/${encodeURIComponent(profilePhones[0].udid)}`);
      await page.locator("#declarations-summary").getByText(/gets profiles/).waitFor();
    }
  });

  await step("labels for screen readers: every control of the form has an accessible name", async () => {
    await page.goto("/console/#/policies/new/ios");
    await page.getByRole("heading", { level: 1, name: "iOS SCEP Profiles", exact: true }).waitFor();
    await page.getByLabel("Include Root Certificate").check();
    await page.getByLabel("Set Subject Alternative Name").check();
    await page.getByRole("button", { name: "Add Value" }).click();
    const unnamed = await page.evaluate(() => Array.from(document.querySelectorAll("main input, main select, main textarea, main button"))
      .filter((el) => !el.closest("[hidden]"))
      .filter((el) => !((el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || (el.tagName === "BUTTON" && el.textContent.trim())))
      .map((el) => el.outerHTML.slice(0, 120)));
    assert.deepEqual(unnamed, []);
  });

  await step("sign-out revokes the session", async () => {
    const cookie = (await page.context().cookies()).find((c) => c.name === "scepter_session");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByText("You are signed out.").waitFor();
    await shot(page, "13-signed-out");
    const r = await anon.get("/v1/sessions/current", { headers: { Cookie: `scepter_session=${cookie.value}` } });
    assert.equal(r.status(), 401, "the old cookie no longer works");
    await page.reload();
    await page.getByRole("heading", { name: "Sign in to Scepter" }).waitFor();
  });

  await step("the keyboard alone: sign in, navigate, open New Policy, configure", async () => {
    const k = await newPage({ name: "keyboard" });
    await k.goto("/console/");
    await k.getByLabel("Operator API key").waitFor();
    const tabTo = async (pred, what) => {
      for (let i = 0; i < 60; i++) {
        await k.keyboard.press("Tab");
        if (await k.evaluate(pred)) return;
      }
      throw new Error(`Tab never reached ${what}`);
    };
    await k.evaluate(() => document.activeElement.blur());
    await tabTo(() => document.activeElement.id === "api-key", "the key field");
    await k.keyboard.type(KEY);
    await k.keyboard.press("Enter");
    await k.getByRole("button", { name: "Sign out" }).waitFor();
    await tabTo(() => document.activeElement.id === "nav-device-management", "Device Management");
    if ((await k.locator("#nav-device-management").getAttribute("aria-expanded")) !== "true") await k.keyboard.press("Enter");
    await tabTo(() => document.activeElement.id === "nav-policy-management", "Policy Management");
    await k.keyboard.press("Enter");
    await k.getByRole("heading", { level: 1, name: "Policy Management", exact: true }).waitFor();
    await tabTo(() => document.activeElement.id === "new-policy", "(+)");
    await k.keyboard.press("Enter");
    await k.getByRole("dialog", { name: "New Policy" }).waitFor();
    assert.equal(await k.evaluate(() => document.activeElement.getAttribute("role")), "tab");
    await k.keyboard.press("ArrowRight");
    assert.equal(await k.evaluate(() => document.activeElement.textContent), "iOS");
    await k.keyboard.press("ArrowLeft");
    await tabTo(() => /configure SCEP Profiles for Mac/.test(document.activeElement.getAttribute("aria-label") || ""), "configure");
    await k.keyboard.press("Enter");
    await k.getByRole("heading", { level: 1, name: "Mac SCEP Profiles", exact: true }).waitFor();
    assert.equal(await k.evaluate(() => document.activeElement.id), "policy-name", "focus starts on the name");
    await k.keyboard.press("Tab");
    assert.equal(await k.evaluate(() => document.activeElement.id), "policy-notes");
    await k.context().close();
  });

  await step("an expired session sends the page back to sign-in", async () => {
    const e = await newPage({ url: URL_SHORT, name: "expiry" });
    await signIn(e);
    await e.getByRole("button", { name: "Sign out" }).waitFor();
    await openPolicyManagement(e);
    await e.waitForTimeout(6500); // console_session_ttl = 5s on that server
    await e.getByRole("tab", { name: "Mac" }).click();
    await e.getByText("Your session has expired. Sign in again.").waitFor();
    await shot(e, "14-session-expired");
    await e.context().close();
  });

  await step("each screen on a phone (390×844) and in dark mode", async () => {
    for (const [viewport, colorScheme] of [[PHONE, "light"], [PHONE, "dark"], [DESKTOP, "dark"]]) {
      const p = await newPage({ viewport, colorScheme, name: `tour-${viewport.width}-${colorScheme}` });
      await p.goto("/console/");
      await p.getByLabel("Operator API key").waitFor();
      await shot(p, "01-sign-in");
      await signIn(p);
      await p.getByRole("button", { name: "Sign out" }).waitFor();
      await openPolicyManagement(p);
      await p.locator(`tr[data-policy-id="${iosPolicyId}"]`).waitFor();
      await shot(p, "11-policies");
      // Nothing overflows the phone's width.
      const wide = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(wide <= 1, `the list page is ${wide}px wider than the screen`);
      await p.getByRole("button", { name: "New policy" }).click();
      await shot(p, "03-new-policy");
      await p.getByRole("dialog", { name: "New Policy" }).getByRole("button", { name: "configure SCEP Profiles for Mac" }).click();
      await p.getByRole("heading", { level: 1, name: "Mac SCEP Profiles", exact: true }).waitFor();
      await p.locator("#fingerprint").fill(SCEP_FP);
      await shot(p, "04-policy-form");
      const wideForm = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(wideForm <= 1, `the form is ${wideForm}px wider than the screen`);
      await p.getByRole("tab", { name: "Device Groups" }).click();
      await shot(p, "05-device-groups");
      await p.goto(`/console/#/policies/${iosPolicyId}`);
      await p.locator("#status-table tbody tr[data-state='installed']").first().waitFor();
      await shot(p, "07-policy-installed");
      await p.goto(`/console/#/policies/${ddmPolicyId}`);
      await p.locator("#status-table tbody tr[data-delivery='ddm'] [data-ddm-state='active']").first().waitFor();
      await shot(p, "policy-ddm-status");
      await p.context().close();
    }
  });

  assert.deepEqual(pageErrors, [], "no script error on any page");
  log("all console steps passed");
}

let code = 0;
try {
  await main();
} catch (e) {
  console.error(`console: FAILED: ${e.stack || e}`);
  for (const [name, p] of openPages) {
    if (p.isClosed()) continue;
    const path = join(SHOTS, `failure-${name}.png`);
    if (await p.screenshot({ path, timeout: 5000 }).then(() => true, () => false)) console.error(`console: the page at the failure: ${path} (${p.url()})`);
  }
  if (pageErrors.length) console.error(`page errors:\n${pageErrors.join("\n")}`);
  code = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  if (api) await api.dispose().catch(() => {});
}
process.exit(code);
