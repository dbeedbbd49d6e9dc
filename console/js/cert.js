// The root certificate upload: a .cer/.crt file, DER or PEM, under 1 MB, holding a
// certificate and no private key.  The page checks what it can before sending the bytes to
// POST /v1/certificates/inspect, which checks again and describes the certificate.

export const MAX_CERT_BYTES = 1024 * 1024;

export function bytesToBase64(bytes) {
  let s = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) s += String.fromCharCode(...bytes.subarray(i, i + chunk));
  return btoa(s);
}

// A reason the file cannot be a root certificate, or null.
export function precheckCertificate(name, bytes) {
  if (bytes.length >= MAX_CERT_BYTES) {
    return `${name}: ${bytes.length} bytes; the file must be smaller than 1 MB`;
  }
  if (bytes.length === 0) return `${name}: the file is empty`;
  const head = new TextDecoder("latin1").decode(bytes.subarray(0, Math.min(bytes.length, 65536)));
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(head)) {
    return `${name}: the file holds a private key; upload only the CA certificate`;
  }
  const pem = head.includes("-----BEGIN CERTIFICATE-----");
  const der = bytes[0] === 0x30 && (bytes[1] & 0x80 ? bytes[1] >= 0x81 && bytes[1] <= 0x84 : true);
  if (!pem && !der) return `${name}: not a certificate (expected a DER or PEM .cer/.crt file)`;
  return null;
}
