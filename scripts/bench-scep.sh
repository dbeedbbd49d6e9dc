#!/bin/sh
# scripts/bench-scep.sh BUILD_DIR — SCEP issuances per second: Scepter's built-in CA (/scep) and
# Debian's scepserver, measured in the same run by the same client (tests/bench/bench_scep.c:
# one keep-alive loopback connection, requests built before the timed window, every reply
# checked), with RSA-2048 and ECDSA P-256 CSRs.  Both CAs are RSA-2048.
#   BENCH_SCEP_COUNT (500)   requests per server and key type
#   BENCH_SCEP_OUT           JSON lines, one per measurement (default bench/scep.json)
# Loopback only; every wait is bounded; everything it starts is stopped at exit.
set -u
B=${1:?usage: scripts/bench-scep.sh BUILD_DIR}
B=$(cd "$B" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_SCEP_COUNT:-500}
OUT=${BENCH_SCEP_OUT:-$SRC/bench/scep.json}
TMP=$(mktemp -d /tmp/scepter-benchscep.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "bench-scep: $*" >&2; exit 1; }
for t in curl scepserver; do command -v $t >/dev/null || die "$t is missing"; done
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
CHALLENGE=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

wait_http() { # URL LOG
    i=0
    until curl -fsS "$1" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 300 ] && die "$1 did not answer within 30 s (see $2)"
        sleep 0.1
    done
}

# --- Scepter, plain HTTP, SQLite, its own CA --------------------------------------------------
"$B/mdm/scepter" ca init --out "$TMP/ca" --bits 2048 --cn "bench SCEP CA" >/dev/null ||
    die "scepter ca init failed"
cat >"$TMP/scepter.conf" <<CONF
listen =
listen_http = 127.0.0.1:0
port_file = $TMP/scepter.ports
public_url = https://127.0.0.1:8443
identity = signature
store = sqlite:$TMP/scepter.db
scep_ca_cert_file = $TMP/ca/ca.pem
scep_ca_key_file = $TMP/ca/ca.key
scep_challenge = $CHALLENGE
scep_rate_limit = 0
log_level = warn
CONF
"$B/mdm/scepter" --config "$TMP/scepter.conf" >"$TMP/scepter.log" 2>&1 &
PIDS="$PIDS $!"
i=0
until [ -s "$TMP/scepter.ports" ]; do
    i=$((i + 1))
    [ $i -gt 300 ] && die "scepter did not start within 30 s: $(tail -n 5 "$TMP/scepter.log")"
    sleep 0.1
done
SCEPTER_PORT=$(sed -n 's/.*http=\([0-9]*\).*/\1/p' "$TMP/scepter.ports")
wait_http "http://127.0.0.1:$SCEPTER_PORT/scep?operation=GetCACaps" "$TMP/scepter.log"

# --- scepserver ------------------------------------------------------------------------------
scepserver ca -init -depot "$TMP/depot" -keySize 2048 >/dev/null 2>&1 || die "scepserver ca -init failed"
SCEPSERVER_PORT=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    p=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 22000)) # below the ephemeral range
    curl -s "http://127.0.0.1:$p/" >/dev/null 2>&1 && continue
    SCEPSERVER_PORT=$p
    break
done
[ -n "$SCEPSERVER_PORT" ] || die "no free port"
scepserver -depot "$TMP/depot" -port "$SCEPSERVER_PORT" -challenge "$CHALLENGE" \
    >"$TMP/scepserver.log" 2>&1 &
PIDS="$PIDS $!"
wait_http "http://127.0.0.1:$SCEPSERVER_PORT/scep?operation=GetCACaps" "$TMP/scepserver.log"

# --- measurements ----------------------------------------------------------------------------
status=0
for key in rsa2048 p256; do
    "$B/tests/bench/bench_scep" --port "$SCEPTER_PORT" --ca "$TMP/ca/ca.pem" \
        --challenge "$CHALLENGE" --count "$N" --key $key --label scepter --json "$TMP/r.json" ||
        status=1
    cat "$TMP/r.json" >>"$OUT" 2>/dev/null
    # scepserver cannot answer an ECDSA requester (it encrypts replies with RSA only): its
    # P-256 figure is recorded as measured (0 issued), not counted as a failure here.
    "$B/tests/bench/bench_scep" --port "$SCEPSERVER_PORT" --ca "$TMP/depot/ca.pem" \
        --challenge "$CHALLENGE" --count "$N" --key $key --label scepserver \
        --json "$TMP/r.json" || [ $key = p256 ] || status=1
    cat "$TMP/r.json" >>"$OUT" 2>/dev/null
done
exit $status
