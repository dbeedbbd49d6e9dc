// The Scepter web console: sign-in with an operator account (name and password) or an API
// key (a session cookie plus a CSRF token from POST /v1/sessions), the signed-in actor and its
// role, the navigation and a hash router.
import { h, clear, announce } from "./dom.js";
import { get, post, del, setCsrf, whenExpired, ApiError } from "./api.js";
import { policyList, policyDetail } from "./policies.js";
import { policyForm } from "./policy-form.js";
import { setActor, currentActor, probe } from "./ui.js";
import { dashboard } from "./dashboard.js";
import { deviceList, deviceDetail } from "./devices.js";
import { groupList, groupDetail } from "./groups.js";
import { commandsPage } from "./commands.js";
import { settingsPage } from "./settings.js";
import { auditPage } from "./audit.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signOut = document.getElementById("sign-out");
const menuToggle = document.getElementById("menu-toggle");
const dmButton = document.getElementById("nav-device-management");
const dmItems = document.getElementById("nav-dm-items");
const actorEl = document.getElementById("actor");
const auditLink = document.getElementById("nav-audit");
let session = null;
let current = null; // the view's cleanup function

function setSignedIn(s) {
  session = s;
  setCsrf(s ? s.csrf_token : null);
  setActor(s);
  nav.hidden = !s;
  signOut.hidden = !s;
  menuToggle.hidden = !s;
  actorEl.hidden = !s;
  document.body.classList.toggle("signed-in", !!s);
  const a = currentActor();
  document.body.dataset.role = s ? a.role : "";
  actorEl.textContent = s ? `${a.name || "API key"} · ${a.role}` : "";
  actorEl.title = s ? `Signed in ${a.type === "operator" ? "as the operator" : "with the API key"} ${a.name || ""} (${a.role})` : "";
  auditLink.hidden = true;
  if (s) probe("/v1/audit?limit=1").then((st) => { auditLink.hidden = st !== 200 || !session; });
}

function setExpanded(open) {
  dmButton.setAttribute("aria-expanded", open ? "true" : "false");
  dmItems.hidden = !open;
}

dmButton.addEventListener("click", () => setExpanded(dmButton.getAttribute("aria-expanded") !== "true"));
menuToggle.addEventListener("click", () => {
  const open = menuToggle.getAttribute("aria-expanded") !== "true";
  menuToggle.setAttribute("aria-expanded", open ? "true" : "false");
  document.body.classList.toggle("menu-open", open);
});
nav.addEventListener("click", (e) => {
  const a = e.target.closest("a");
  if (a) {
    if (a.getAttribute("href") === location.hash) route(); // the same page again: reload it
    menuToggle.setAttribute("aria-expanded", "false");
    document.body.classList.remove("menu-open");
  }
});

signOut.addEventListener("click", async () => {
  try {
    await del("/v1/sessions/current");
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) announce(`Sign-out failed: ${e.message}`, "error");
  }
  setSignedIn(null);
  history.replaceState(null, "", "#/"); // no hashchange: the sign-in page stays as it is
  showSignIn("You are signed out.");
});

whenExpired((err) => {
  if (!session) return;
  setSignedIn(null);
  showSignIn(err.field === "session" || /expired/i.test(err.message)
    ? "Your session has expired. Sign in again."
    : `Signed out: ${err.message}`);
});

function view(title, ...content) {
  if (current) current();
  current = null;
  clear(main);
  document.title = `${title} · Scepter console`;
  main.append(...content);
}

// Sign in with an operator account or an API key (the key is what scripts use; a server
// without accounts only takes keys).
function showSignIn(message) {
  const keyId = "api-key";
  const err = h("p", { id: "api-key-error", class: "field-error", hidden: true });
  const input = h("input", {
    id: keyId, name: "api_key", type: "password", autocomplete: "current-password",
    required: true, "aria-describedby": "api-key-help api-key-error", spellcheck: "false",
  });
  const nameIn = h("input", { id: "signin-name", name: "username", type: "text", autocomplete: "username", spellcheck: "false", "aria-describedby": "signin-error" });
  const pwIn = h("input", { id: "signin-password", name: "password", type: "password", autocomplete: "current-password", "aria-describedby": "signin-error" });
  const accErr = h("p", { id: "signin-error", class: "field-error", hidden: true });
  const useKey = h("input", { type: "radio", name: "signin-with", id: "signin-with-key", value: "key", checked: true });
  const useAccount = h("input", { type: "radio", name: "signin-with", id: "signin-with-account", value: "account" });
  const keyBox = h("div", { id: "signin-key" },
    h("div", { class: "field" },
      h("label", { for: keyId }, "Operator API key"),
      input,
      h("p", { id: "api-key-help", class: "help" },
        "The bootstrap key (var/dev/api_key after make run) or one made with scepterctl apikey create."),
      err));
  const accountBox = h("div", { id: "signin-account", hidden: true },
    h("div", { class: "field" }, h("label", { for: "signin-name" }, "Name"), nameIn),
    h("div", { class: "field" }, h("label", { for: "signin-password" }, "Password"), pwIn),
    accErr);
  const sync = () => {
    keyBox.hidden = !useKey.checked;
    accountBox.hidden = useKey.checked;
  };
  useKey.addEventListener("change", sync);
  useAccount.addEventListener("change", sync);
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card signin", "aria-labelledby": "signin-title", novalidate: true },
    h("h1", { id: "signin-title" }, "Sign in to Scepter"),
    message ? h("p", { class: "notice", role: "alert" }, message) : null,
    h("fieldset", { class: "segmented" }, h("legend", { class: "sr-only" }, "Sign in with"),
      h("label", { class: "check", for: "signin-with-key" }, useKey, "API key"),
      h("label", { class: "check", for: "signin-with-account" }, useAccount, "Operator account")),
    keyBox, accountBox,
    h("div", { class: "actions" }, button));
  const bad = (el, e, msg) => {
    e.textContent = msg;
    e.hidden = false;
    el.setAttribute("aria-invalid", "true");
    el.focus();
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    accErr.hidden = true;
    for (const el of [input, nameIn, pwIn]) el.removeAttribute("aria-invalid");
    let body;
    if (useKey.checked) {
      if (!input.value.trim()) return bad(input, err, "Enter an operator API key.");
      body = { api_key: input.value.trim() };
    } else {
      if (!nameIn.value.trim()) return bad(nameIn, accErr, "Enter your name.");
      if (!pwIn.value) return bad(pwIn, accErr, "Enter your password.");
      body = { name: nameIn.value.trim(), password: pwIn.value };
    }
    button.disabled = true;
    try {
      const s = await post("/v1/sessions", body, { signingIn: true });
      input.value = "";
      pwIn.value = "";
      setSignedIn(s);
      route();
    } catch (x) {
      if (useKey.checked) bad(input, err, x.status === 401 ? "That API key was refused." : x.message);
      else bad(x.field === "name" ? nameIn : pwIn, accErr, x.status === 401 ? "That name and password were refused." : x.message);
    } finally {
      button.disabled = false;
    }
  });
  view("Sign in", form);
  input.focus();
}

async function route() {
  if (!session) {
    try {
      setSignedIn(await get("/v1/sessions/current", { signingIn: true }));
    } catch {
      showSignIn();
      return;
    }
  }
  announce("");
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  for (const a of nav.querySelectorAll("a")) {
    if (a.getAttribute("href") === `#/${parts[0] || "dashboard"}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const ctx = { view, params, navigate: (to) => { location.hash = to; } };
  try {
    const dm = ["devices", "groups", "commands", "policies"].includes(parts[0]);
    if (dm) setExpanded(true);
    if (parts[0] === "devices") {
      current = parts[1] ? await deviceDetail(ctx, decodeURIComponent(parts[1])) : await deviceList(ctx);
    } else if (parts[0] === "groups") {
      current = parts[1] ? await groupDetail(ctx, decodeURIComponent(parts[1])) : await groupList(ctx);
    } else if (parts[0] === "commands") {
      current = await commandsPage(ctx);
    } else if (parts[0] === "settings") {
      current = await settingsPage(ctx, parts[1]);
    } else if (parts[0] === "audit") {
      current = await auditPage(ctx);
    } else if (parts[0] === "policies") {
      setExpanded(true);
      if (parts.length === 1) current = await policyList(ctx);
      else if (parts[1] === "new") current = await policyForm(ctx, { platform: parts[2] === "ios" ? "ios" : "macos" });
      else if (parts[2] === "edit") current = await policyForm(ctx, { id: parts[1] });
      else current = await policyDetail(ctx, parts[1]);
    } else {
      current = await dashboard(ctx);
    }
    // Focus the new page (unless the page put focus on its first field itself).
    if (!main.contains(document.activeElement)) main.focus({ preventScroll: true });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    view("Error", h("section", { class: "card" }, h("h1", {}, "Something went wrong"),
      h("p", { role: "alert" }, e.message)));
  }
}

window.addEventListener("hashchange", route);
route();
