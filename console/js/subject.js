// The SCEP Subject: rows of (OID or short name, value) composing one X.500 statement,
// "/C=US/O=ABCEnterprise/CN=foo/", and back.

export const SHORT_NAMES = ["C", "ST", "L", "O", "OU", "CN", "emailAddress", "DC", "serialNumber", "UID"];

export function composeSubject(rows) {
  const parts = rows
    .filter((r) => (r.oid || "").trim() && (r.value || "") !== "")
    .map((r) => `${r.oid.trim()}=${r.value.replace(/\//g, "\\/")}`);
  return parts.length ? `/${parts.join("/")}/` : "";
}

// Split on "/" not escaped by a backslash.
export function parseSubject(text) {
  const t = (text || "").trim();
  if (!t) return { rows: [] };
  if (!t.startsWith("/")) return { rows: [], error: 'must start with "/", e.g. /C=US/O=ABCEnterprise/CN=foo/' };
  const rows = [];
  let cur = "";
  const parts = [];
  for (let i = 1; i < t.length; i++) {
    const c = t[i];
    if (c === "\\" && t[i + 1] === "/") { cur += "/"; i += 1; }
    else if (c === "/") { parts.push(cur); cur = ""; }
    else cur += c;
  }
  if (cur) parts.push(cur);
  for (const p of parts) {
    if (!p) continue;
    const eq = p.indexOf("=");
    if (eq <= 0) return { rows, error: `"${p}" is not NAME=VALUE` };
    rows.push({ oid: p.slice(0, eq), value: p.slice(eq + 1) });
  }
  return { rows };
}
