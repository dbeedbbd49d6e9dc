// The "send a command" fields: the typed commands the API knows (POST .../commands with
// {"command": {"request_type", ...}}), each with its own fields, or a raw plist; priority and
// push.  Used by a device's page and the Commands page.
import { h, uid } from "./dom.js";
import { field, readFile } from "./ui.js";

const QUERIES = ["DeviceName", "OSVersion", "BuildVersion", "ModelName", "Model", "ProductName",
  "SerialNumber", "UDID", "IsSupervised", "IsActivationLockEnabled", "DeviceCapacity",
  "AvailableDeviceCapacity", "BatteryLevel", "WiFiMAC", "BluetoothMAC"];

export const COMMAND_TYPES = [
  { id: "DeviceInformation", label: "DeviceInformation — ask for device facts" },
  { id: "ProfileList", label: "ProfileList — list installed profiles" },
  { id: "CertificateList", label: "CertificateList — list installed certificates" },
  { id: "InstallProfile", label: "InstallProfile — install a .mobileconfig" },
  { id: "RemoveProfile", label: "RemoveProfile — remove a profile by identifier" },
  { id: "DeviceConfigured", label: "DeviceConfigured — end Setup Assistant's wait" },
  { id: "DeviceLock", label: "DeviceLock — lock the screen", keys: "{\"Message\": \"Call IT\", \"PhoneNumber\": \"...\", \"PIN\": \"123456\" (Macs)}" },
  { id: "RestartDevice", label: "RestartDevice — restart", keys: "{\"NotifyUser\": true} (Macs)" },
  { id: "ShutDownDevice", label: "ShutDownDevice — shut down" },
  { id: "EraseDevice", label: "EraseDevice — erase all content", keys: "{\"PIN\": \"123456\"} (Macs), {\"PreserveDataPlan\": true} (iPhones)" },
  { id: "ClearPasscode", label: "ClearPasscode — remove the passcode (uses the escrowed UnlockToken)" },
  { id: "SecurityInfo", label: "SecurityInfo — security facts" },
  { id: "InstalledApplicationList", label: "InstalledApplicationList — installed apps", keys: "{\"ManagedAppsOnly\": true}" },
  { id: "AvailableOSUpdates", label: "AvailableOSUpdates — updates the device sees" },
  { id: "ScheduleOSUpdate", label: "ScheduleOSUpdate — install an update", keys: "{\"Updates\": [{\"ProductKey\": \"...\", \"InstallAction\": \"InstallASAP\"}]}" },
  { id: "Settings", label: "Settings — change device settings", keys: "{\"Settings\": [{\"Item\": \"DeviceName\", \"DeviceName\": \"Lab Mac\"}]}" },
  { id: "raw", label: "Other — a raw command plist" },
];
// The commands whose keys are typed as Apple names them, in a JSON object.
const KEYED = new Set(COMMAND_TYPES.filter((t) => t.keys !== undefined || ["ShutDownDevice",
  "ClearPasscode", "SecurityInfo", "AvailableOSUpdates"].includes(t.id)).map((t) => t.id));

// {el, fields, read(): Promise<{command, push, priority}>} — read() throws {field, message}.
export function commandForm(prefix = "cmd") {
  const id = (s) => `${prefix}-${s}`;
  const type = h("select", { id: id("type") }, COMMAND_TYPES.map((t) => h("option", { value: t.id }, t.label)));
  const fType = field("Command", type);
  const queryBoxes = QUERIES.map((q) => {
    const cb = h("input", { type: "checkbox", value: q, id: uid(`${prefix}-q`) });
    return { q, cb, el: h("label", { class: "check", for: cb.id }, cb, q) };
  });
  const extra = h("input", { type: "text", id: id("queries-extra"), spellcheck: "false", placeholder: "e.g. OSUpdateSettings, IsMDMLostModeEnabled" });
  const fExtra = field("More queries (comma-separated)", extra, "None chosen: Scepter asks for the usual device facts.");
  const managed = h("input", { type: "checkbox", id: id("managed-only") });
  const identifier = h("input", { type: "text", id: id("identifier"), spellcheck: "false", placeholder: "com.example.wifi" });
  const fIdent = field("Profile identifier", identifier, "The PayloadIdentifier of the profile to remove.");
  const file = h("input", { type: "file", id: id("payload"), accept: ".mobileconfig,application/x-apple-aspen-config" });
  const fFile = field("Profile (.mobileconfig, signed or not)", file);
  const raw = h("textarea", { id: id("plist"), rows: 8, spellcheck: "false", class: "mono",
    placeholder: "<?xml ...?><plist version=\"1.0\"><dict><key>RequestType</key><string>...</string></dict></plist>" });
  const fRaw = field("Command plist", raw, "The Command dictionary, or the whole {CommandUUID, Command}.");
  const keys = h("textarea", { id: id("keys"), rows: 4, spellcheck: "false", class: "mono" });
  const fKeys = field("Keys (JSON, Apple's key names; empty for none)", keys);
  const expires = h("input", { type: "text", id: id("expires"), spellcheck: "false", placeholder: "e.g. 10m, 7d" });
  const fExpires = field("Expires in (optional)", expires, "Not delivered by then: the command ends as Expired.");
  const prio = h("input", { type: "number", id: id("priority"), min: -100, max: 100, value: "0" });
  const fPrio = field("Priority (−100 to 100; higher goes first)", prio);
  const push = h("input", { type: "checkbox", id: id("push"), checked: true });

  const sections = {
    DeviceInformation: h("fieldset", { class: "sub" }, h("legend", {}, "Queries"),
      h("div", { class: "check-grid" }, queryBoxes.map((x) => x.el)), fExtra.wrap),
    ProfileList: h("label", { class: "check", for: managed.id }, managed, "Managed profiles only"),
    InstallProfile: fFile.wrap,
    RemoveProfile: fIdent.wrap,
    raw: fRaw.wrap,
  };
  sections.CertificateList = sections.ProfileList;
  const body = h("div", { class: "cmd-fields" });
  function show() {
    body.replaceChildren();
    const s = sections[type.value];
    if (s) body.append(s);
    else if (KEYED.has(type.value)) {
      const t = COMMAND_TYPES.find((x) => x.id === type.value);
      keys.placeholder = t.keys || "{}";
      body.append(fKeys.wrap);
    }
  }
  type.addEventListener("change", show);
  show();

  const fields = {
    "command.request_type": fType, "command.queries": fExtra, "command.identifier": fIdent,
    "command.payload": fFile, "command.plist": fRaw, priority: fPrio, "command.uuid": fType,
    expires_in: fExpires, "command.keys": fKeys,
  };
  // Errors naming a key inside the raw plist (command.plist.RequestType...) go on the plist.
  const fieldFor = (name) => fields[name] || (name && name.startsWith("command.plist") ? fRaw
    : name && name.startsWith("command.") && KEYED.has(type.value) ? fKeys : null);

  async function read() {
    const t = type.value;
    let command;
    if (t === "raw") {
      if (!raw.value.trim()) throw { field: "command.plist", message: "Paste the command plist." };
      command = { plist: raw.value };
    } else {
      command = { request_type: t };
      if (t === "DeviceInformation") {
        const qs = queryBoxes.filter((x) => x.cb.checked).map((x) => x.q)
          .concat(extra.value.split(",").map((s) => s.trim()).filter(Boolean));
        if (qs.length) command.queries = qs;
      } else if (t === "ProfileList" || t === "CertificateList") {
        if (managed.checked) command.managed_only = true;
      } else if (t === "RemoveProfile") {
        if (!identifier.value.trim()) throw { field: "command.identifier", message: "Enter the identifier of the profile to remove." };
        command.identifier = identifier.value.trim();
      } else if (t === "InstallProfile") {
        if (!file.files.length) throw { field: "command.payload", message: "Choose a .mobileconfig file." };
        if (file.files[0].size > 1024 * 1024) throw { field: "command.payload", message: "The profile is larger than 1 MB." };
        command.payload = await readFile(file.files[0]);
      } else if (KEYED.has(t) && keys.value.trim()) {
        let obj;
        try { obj = JSON.parse(keys.value); } catch (e) { obj = null; }
        if (!obj || typeof obj !== "object" || Array.isArray(obj)) throw { field: "command.keys", message: "Keys: a JSON object, e.g. " + (keys.placeholder || "{}") };
        for (const [k, v] of Object.entries(obj)) {
          if (k === "request_type") continue;
          command[k] = v;
        }
      }
    }
    const p = Number(prio.value || 0);
    if (!Number.isInteger(p) || p < -100 || p > 100) throw { field: "priority", message: "Priority: a whole number from −100 to 100." };
    const out = { command, push: push.checked, priority: p };
    if (expires.value.trim()) out.expires_in = expires.value.trim();
    return out;
  }

  const el = h("div", { class: "command-form" },
    fType.wrap, body,
    h("div", { class: "grid" }, fPrio.wrap, fExpires.wrap,
      h("div", { class: "field" }, h("span", { class: "label" }, "Delivery"),
        h("label", { class: "check", for: push.id }, push, "Push now (wake the devices)"))));
  return {
    el, read, fieldFor, type,
    clearErrors() { for (const f of [fType, fExtra, fIdent, fFile, fRaw, fPrio, fKeys, fExpires]) f.clear(); },
  };
}
