// The CA fingerprint field: what the server accepts (profiles/policy.c), understood as the
// operator types — hex with colons, spaces, dashes or no delimiters (40 digits: SHA-1, 64:
// SHA-256), or Base64 of the 20 or 32 bytes.  Returns {ok, algorithm, base64, hex} or
// {ok: false, error}.

const DELIM = /[:\s-]/;

function bytesToBase64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function algorithmOf(n) {
  return n === 20 ? "SHA-1" : n === 32 ? "SHA-256" : null;
}

export function parseFingerprint(raw) {
  const text = (raw || "").trim();
  if (!text) return { ok: false, empty: true, error: "empty" };
  if (text.length > 256) return { ok: false, error: `${text.length} characters; a SHA-1 or SHA-256 fingerprint is far shorter` };
  let hexOnly = true;
  let delims = 0;
  let hex = "";
  for (const c of text) {
    if (/[0-9a-fA-F]/.test(c)) hex += c.toLowerCase();
    else if (DELIM.test(c)) delims += 1;
    else hexOnly = false;
  }
  const hexError = `${hex.length} hex digits; a SHA-1 fingerprint has 40 and a SHA-256 fingerprint 64`;
  if (hexOnly && (hex.length === 40 || hex.length === 64)) {
    const bytes = hex.match(/../g).map((p) => parseInt(p, 16));
    return { ok: true, algorithm: algorithmOf(bytes.length), base64: bytesToBase64(bytes), hex, form: "hex" };
  }
  if (hexOnly && delims > 0) return { ok: false, error: hexError };
  let bin;
  try {
    let b = text.replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b)) throw new Error("not base64");
    while (b.length % 4) b += "=";
    bin = atob(b);
  } catch {
    return { ok: false, error: hexOnly ? hexError : "neither hex (e.g. 11:22:33:...) nor Base64" };
  }
  if (bin.length !== 20 && bin.length !== 32) {
    return {
      ok: false,
      error: hexOnly ? hexError : `Base64 decodes to ${bin.length} bytes; a SHA-1 fingerprint is 20 bytes and a SHA-256 fingerprint 32`,
    };
  }
  const bytes = Array.from(bin, (c) => c.charCodeAt(0));
  return {
    ok: true, algorithm: algorithmOf(bytes.length), base64: bytesToBase64(bytes),
    hex: bytes.map((x) => x.toString(16).padStart(2, "0")).join(""), form: "base64",
  };
}
