#!/bin/sh
# make run: start scepter on the embedded SQLite store with development certificates.
#   scripts/run-dev.sh [BUILD_DIR]
# Everything lives under ./var/ (git-ignored): a development TLS CA and server certificate
# for localhost, Scepter's built-in SCEP CA (scepter ca init; the enrollment profile's
# identity payload points at Scepter's own /scep, so devices make their private keys) and its
# challenge, a profile-signing certificate, a bootstrap API key, and var/dev/scepter.conf.
# Run it again and the same files are reused.  Ctrl-C stops the server cleanly.
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
dev=var/dev
mkdir -p "$dev"
umask 077

gen_ca() { # name cn
    [ -f "$dev/$1.pem" ] && return 0
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=Scepter development/CN=$2" \
        -keyout "$dev/$1.key" -out "$dev/$1.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
    echo "run-dev: created $dev/$1.pem ($2)"
}
gen_leaf() { # name cn ca extensions...
    [ -f "$dev/$1.pem" ] && return 0
    name=$1 cn=$2 ca=$3
    shift 3
    openssl req -new -newkey rsa:2048 -nodes -subj "/O=Scepter development/CN=$cn" \
        -keyout "$dev/$name.key" -out "$dev/$name.csr" 2>/dev/null
    printf '%s\n' "$@" > "$dev/$name.ext"
    openssl x509 -req -in "$dev/$name.csr" -CA "$dev/$ca.pem" -CAkey "$dev/$ca.key" \
        -CAcreateserial -days 825 -out "$dev/$name.pem" -extfile "$dev/$name.ext" 2>/dev/null
    rm -f "$dev/$name.csr" "$dev/$name.ext"
    echo "run-dev: created $dev/$name.pem ($cn)"
}

gen_ca tls-ca "Scepter development TLS CA"
gen_leaf tls localhost tls-ca "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment"
if [ ! -f "$dev/scep-ca/ca.pem" ]; then
    "$build/mdm/scepter" ca init --out "$dev/scep-ca" --cn "Scepter development SCEP CA" >/dev/null
    echo "run-dev: created $dev/scep-ca/ca.pem (Scepter development SCEP CA)"
fi
[ -f "$dev/scep_challenge" ] || {
    openssl rand -hex 16 > "$dev/scep_challenge"
    echo "run-dev: created $dev/scep_challenge"
}
gen_leaf signing "Scepter development profile signing" tls-ca \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=emailProtection,codeSigning"
[ -f "$dev/api_key" ] || { openssl rand -hex 24 > "$dev/api_key"; echo "run-dev: created $dev/api_key"; }

if [ ! -f "$dev/scepter.conf" ]; then
    cat > "$dev/scepter.conf" <<CONF
; Development configuration written by scripts/run-dev.sh (make run).
; Every key is documented in config/scepter.conf.example.
listen = 127.0.0.1:8443
public_url = https://localhost:8443
store = sqlite:./var/scepter.db
tls_cert_file = $dev/tls.pem
tls_key_file = $dev/tls.key
tls_ca_file = $dev/tls-ca.pem
; Devices enroll through Scepter's own SCEP CA (docs/scep-ca.md), each enrollment profile
; with a one-time challenge of its own; $dev/scep_challenge is the static challenge for other
; SCEP clients (SCEPTER_SCEP_CHALLENGE_FILE).
device_ca_file = $dev/scep-ca/ca.pem
scep_ca_cert_file = $dev/scep-ca/ca.pem
scep_ca_key_file = $dev/scep-ca/ca.key
enroll_scep_ca = default
signing_cert_file = $dev/signing.pem
signing_key_file = $dev/signing.key
; No APNs certificate in development: devices get commands when they check in.  Upload one
; with scepterctl pushcert upload, or set apns_cert_file / apns_key_file.
push_topic = com.apple.mgmt.External.00000000-0000-0000-0000-000000000000
log_level = info
CONF
    echo "run-dev: wrote $dev/scepter.conf"
fi

cat <<MSG
run-dev: starting scepter on https://localhost:8443 (SQLite: var/scepter.db)
  enrollment profile:  https://localhost:8443/mdm/enroll
  SCEP CA:             https://localhost:8443/scep ($dev/scep-ca/ca.pem)
  health:              curl -k https://localhost:8443/healthz
  operator CLI:        export SCEPTER_API_KEY=\$(cat $dev/api_key) SCEPTER_CA=$dev/tls-ca.pem
                       $build/mdm/scepterctl device list

  WARNING: development mode: enroll_open = true, so anyone who reaches /mdm/enroll gets a
  device identity. In production set enroll_secret or enroll_tokens (see docs/security.md).
MSG
SCEPTER_SCEP_CHALLENGE_FILE="$dev/scep_challenge" \
    SCEPTER_ENROLL_SCEP_CHALLENGE_FILE="$dev/scep_challenge" \
    SCEPTER_API_KEY_FILE="$dev/api_key" exec "$build/mdm/scepter" --config "$dev/scepter.conf" \
    --enroll-open=true
