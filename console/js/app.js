// The Scepter web console: sign-in with an operator API key (a session cookie plus a CSRF
// token from POST /v1/sessions), the navigation and a hash router.
import { h, clear, announce } from "./dom.js";
import { get, post, del, setCsrf, whenExpired, ApiError } from "./api.js";
import { policyList, policyDetail } from "./policies.js";
import { policyForm } from "./policy-form.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signOut = document.getElementById("sign-out");
const menuToggle = document.getElementById("menu-toggle");
const dmButton = document.getElementById("nav-device-management");
const dmItems = document.getElementById("nav-dm-items");
let session = null;
let current = null; // the view's cleanup function

function setSignedIn(s) {
  session = s;
  setCsrf(s ? s.csrf_token : null);
  nav.hidden = !s;
  signOut.hidden = !s;
  menuToggle.hidden = !s;
  document.body.classList.toggle("signed-in", !!s);
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

function showSignIn(message) {
  const keyId = "api-key";
  const err = h("p", { id: "api-key-error", class: "field-error", hidden: true });
  const input = h("input", {
    id: keyId, name: "api_key", type: "password", autocomplete: "current-password",
    required: true, "aria-describedby": "api-key-help api-key-error", spellcheck: "false",
  });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card signin", "aria-labelledby": "signin-title", novalidate: true },
    h("h1", { id: "signin-title" }, "Sign in to Scepter"),
    message ? h("p", { class: "notice", role: "alert" }, message) : null,
    h("div", { class: "field" },
      h("label", { for: keyId }, "Operator API key"),
      input,
      h("p", { id: "api-key-help", class: "help" },
        "The bootstrap key (var/dev/api_key after make run) or one made with scepterctl apikey create."),
      err),
    h("div", { class: "actions" }, button));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    input.removeAttribute("aria-invalid");
    if (!input.value.trim()) {
      err.textContent = "Enter an operator API key.";
      err.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      const s = await post("/v1/sessions", { api_key: input.value.trim() }, { signingIn: true });
      input.value = "";
      setSignedIn(s);
      if (!location.hash || location.hash === "#/" || location.hash === "#") route();
      else route();
    } catch (x) {
      err.textContent = x.status === 401 ? "That API key was refused." : x.message;
      err.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  view("Sign in", form);
  input.focus();
}

function home() {
  view("Home",
    h("section", { class: "card" },
      h("h1", {}, "Scepter"),
      h("p", {}, "Manage Mac and iOS SCEP Profiles policies for the devices enrolled with this server."),
      h("p", {}, "Open Device Management → Policy Management to list, create and edit policies.")));
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
    if (a.getAttribute("href") === `#/${parts[0] || ""}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const ctx = { view, params, navigate: (to) => { location.hash = to; } };
  try {
    if (parts[0] === "policies") {
      setExpanded(true);
      if (parts.length === 1) current = await policyList(ctx);
      else if (parts[1] === "new") current = await policyForm(ctx, { platform: parts[2] === "ios" ? "ios" : "macos" });
      else if (parts[2] === "edit") current = await policyForm(ctx, { id: parts[1] });
      else current = await policyDetail(ctx, parts[1]);
    } else {
      home();
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
