#!/bin/bash
# scripts/sim-scale.sh BUILD_DIR — the device simulator's scale mode against a real server.
#
# Starts, on loopback only: Debian's scepserver (the CA that issues the devices' MDM
# identities, as a customer's CA would), the HTTP/2 APNs test server, and scepter (SQLite, or
# PostgreSQL with SIM_SCALE_STORE=postgres://...).  Then one scepter-sim process:
#   1. enrolls SIM_SCALE_DEVICES devices (default 100000; Macs, iPhones, iPads): each downloads
#      the signed enrollment profile, gets its identity by a real SCEP exchange (one shared RSA
#      key, --shared-key, so the simulator's key generation does not dominate), sends
#      Authenticate and TokenUpdate over mTLS and registers its token with the APNs test server;
#   2. an operator puts every device in a group and sends ProfileList to the group with a push
#      (POST /v1/commands): scepter queues it, pushes every token through APNs, the test server
#      forwards each push to the simulated device, which polls and answers.
# At most SIM_SCALE_CONCURRENCY (64) devices talk to scepter at once.  Prints the simulator's
# latency percentiles per message type, the phase times and both processes' peak RSS, and
# writes them to SIM_SCALE_OUT (default bench/sim-scale.json).  Every wait is bounded.
# Needs curl and jq (scripts/deps.sh bench installs them).
set -eu
# The whole script is one compound command, read before it runs: editing the file during a
# long run cannot change what the running shell reads next.
{

B=${1:?usage: scripts/sim-scale.sh BUILD_DIR}
B=$(cd "$B" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
N=${SIM_SCALE_DEVICES:-100000}
CONC=${SIM_SCALE_CONCURRENCY:-64}
STORE=${SIM_SCALE_STORE:-}
OUT=${SIM_SCALE_OUT:-$SRC/bench/sim-scale.json}
LIMIT_S=${SIM_SCALE_LIMIT_S:-3600} # the whole run
TMP=$(mktemp -d /tmp/scepter-simscale.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    [ -n "${SIM_SCALE_KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
START=$(date +%s)

say() { echo "sim-scale [$(($(date +%s) - START))s] $*"; }
die() { echo "sim-scale: $*" >&2; exit 1; }
for t in curl jq openssl scepserver; do command -v $t >/dev/null || die "$t is missing"; done
left() { echo $((LIMIT_S - ($(date +%s) - START))); }

# Wait (30 s at most) for a file to exist and be non-empty.
wait_file() {
    i=0
    while [ ! -s "$1" ]; do
        i=$((i + 1))
        [ $i -gt 300 ] && die "$1 did not appear within 30 s (see $2)"
        sleep 0.1
    done
}

# --- PKI -------------------------------------------------------------------------------------
PKI=$B/apns-pki
[ -f "$PKI/topic" ] || sh "$SRC/tests/apns-server/make-test-pki.sh" "$PKI" >/dev/null
# The profile-signing certificate, from the same test CA as the TLS certificate.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=sim-scale signing" \
    -keyout "$TMP/signing.key" -out "$TMP/signing.csr" 2>/dev/null
printf 'keyUsage=critical,digitalSignature\n' >"$TMP/signing.ext"
openssl x509 -req -in "$TMP/signing.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
    -CAserial "$TMP/ca.srl" -days 2 -extfile "$TMP/signing.ext" -out "$TMP/signing.pem" 2>/dev/null
openssl rand -hex 24 >"$TMP/api_key"
API_KEY=$(cat "$TMP/api_key")

free_port() { # a loopback port nobody listens on (bounded tries)
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        p=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 22000)) # below the ephemeral range
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo $p; return 0; fi
    done 2>/dev/null
    die "no free port"
}

# --- scepserver: the devices' CA ------------------------------------------------------------
scepserver ca -init -depot "$TMP/depot" -keySize 2048 >/dev/null 2>&1 || die "scepserver ca -init failed"
SCEP_PORT=$(free_port)
scepserver -depot "$TMP/depot" -port "$SCEP_PORT" -challenge scale-secret >"$TMP/scepserver.log" 2>&1 &
PIDS="$PIDS $!"
i=0
until curl -fsS "http://127.0.0.1:$SCEP_PORT/scep?operation=GetCACaps" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 150 ] && die "scepserver did not answer within 15 s (see $TMP/scepserver.log)"
    sleep 0.1
done
say "scepserver on 127.0.0.1:$SCEP_PORT"
# scepserver's file depot reads its whole index.txt (one line per issued certificate) on every
# PKCSReq to look for an earlier certificate with the same subject: quadratic over a large run
# (at 30,000 devices it was the run's pace, 20 enrollments/s).  Every device here has its own
# subject, so the index is emptied every 10 s; the certificates stay in the depot.
(while [ -f "$TMP/depot/index.txt" ]; do : >"$TMP/depot/index.txt"; sleep 10; done) >/dev/null 2>&1 &
PIDS="$PIDS $!"

# --- the APNs test server --------------------------------------------------------------------
"$B/tests/apns-server/apns-test-server" --cert "$PKI/server.pem" --key "$PKI/server.key" \
    --client-ca "$PKI/pushca.pem" --listen 127.0.0.1:0 --port-file "$TMP/apns.port" \
    --control 127.0.0.1:0 --control-port-file "$TMP/control.port" --max-streams 1000 \
    --log-size 0 --max-lifetime "$LIMIT_S" --quiet >"$TMP/apns.log" 2>&1 &
PIDS="$PIDS $!"
wait_file "$TMP/apns.port" "$TMP/apns.log"
wait_file "$TMP/control.port" "$TMP/apns.log"
APNS_PORT=$(cat "$TMP/apns.port")
CONTROL_PORT=$(cat "$TMP/control.port")
say "apns-test-server on 127.0.0.1:$APNS_PORT (control $CONTROL_PORT)"

# --- scepter ---------------------------------------------------------------------------------
[ -n "$STORE" ] || STORE="sqlite:$TMP/scepter.db"
PORT=$(free_port) # known before start: the profile's ServerURL carries it
cat >"$TMP/scepter.conf" <<CONF
listen = 127.0.0.1:$PORT
port_file = $TMP/scepter.ports
public_url = https://127.0.0.1:$PORT
store = $STORE
tls_cert_file = $PKI/server.pem
tls_key_file = $PKI/server.key
tls_ca_file = $PKI/ca.pem
identity = mtls
device_ca_file = $TMP/depot/ca.pem
enroll_scep_url = http://127.0.0.1:$SCEP_PORT/scep
enroll_scep_challenge = scale-secret
enroll_open = true
enroll_rate_limit = 0
signing_cert_file = $TMP/signing.pem
signing_key_file = $TMP/signing.key
push_topic = $(cat "$PKI/topic")
apns_url = https://localhost:$APNS_PORT
apns_ca_file = $PKI/ca.pem
apns_cert_file = $PKI/push.pem
apns_key_file = $PKI/push.key
max_device_body_bytes = 8388608
max_api_body_bytes = 8388608
log_level = warn
CONF
SCEPTER_API_KEY_FILE="$TMP/api_key" "$B/mdm/scepter" --config "$TMP/scepter.conf" \
    >"$TMP/scepter.log" 2>&1 &
SCEPTER_PID=$!
PIDS="$PIDS $SCEPTER_PID"
wait_file "$TMP/scepter.ports" "$TMP/scepter.log"
URL=https://127.0.0.1:$PORT
say "scepter on $URL ($STORE)"

api() { # METHOD PATH [BODY-FILE]
    body=()
    [ $# -ge 3 ] && body=(-H 'Content-Type: application/json' --data-binary "@$3")
    curl -sS --max-time 120 --cacert "$PKI/ca.pem" -H "Authorization: Bearer $API_KEY" \
        "${body[@]}" -X "$1" "$URL$2"
}

# --- the simulator ---------------------------------------------------------------------------
T_ENROLL0=$(date +%s.%N)
${SIM_SCALE_WRAPPER:-} "$B/tests/sim/scepter-sim" --server "$URL" --ca "$PKI/ca.pem" --devices "$N" --shared-key \
    --platform-mix mac=40,iphone=40,ipad=20 --seed 1 --concurrency "$CONC" \
    --apns-control "http://127.0.0.1:$CONTROL_PORT" --until-idle --idle-ms 20000 \
    --duration "$(left)" --ready-file "$TMP/sim.ready" --report json --log-level warn \
    >"$TMP/sim.json" 2>"$TMP/sim.log" &
SIM_PID=$!
PIDS="$PIDS $SIM_PID"

peak_rss_kb() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null || echo 0; }

# Progress from /metrics (TokenUpdate check-ins), the end from the simulator's ready file.
metric() { curl -sS --max-time 30 --cacert "$PKI/ca.pem" "$URL/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $2 } END { print s + 0 }'; }
last=0
until [ -s "$TMP/sim.ready" ]; do
    kill -0 "$SIM_PID" 2>/dev/null || die "the simulator exited during enrollment: $(tail -n 5 "$TMP/sim.log")"
    [ "$(left)" -gt 0 ] || die "time limit reached during enrollment"
    n=$(metric 'scepter_checkins_total{message_type="TokenUpdate",result="ok"')
    if [ $((n / 10000)) -ne $((last / 10000)) ]; then say "$n devices enrolled"; fi
    last=$n
    sleep 1
done
T_ENROLL1=$(date +%s.%N)
ENROLL_S=$(awk "BEGIN{print $T_ENROLL1-$T_ENROLL0}")
[ "$(cat "$TMP/sim.ready")" = "enrolled $N" ] || die "the simulator: $(cat "$TMP/sim.ready") of $N ($(tail -n 3 "$TMP/sim.log"))"
say "$N devices enrolled"

# --- the operator: every device in a group, one command to the group -------------------------
printf '{"name":"scale"}' >"$TMP/group.json"
api POST /v1/device-groups "$TMP/group.json" >/dev/null
api GET "/v1/devices?enrolled=true&limit=100000" | jq -r '.devices[].udid' >"$TMP/udids"
[ "$(wc -l <"$TMP/udids")" -eq "$N" ] || die "the API listed $(wc -l <"$TMP/udids") devices, not $N"
split -l 10000 "$TMP/udids" "$TMP/chunk."
for c in "$TMP"/chunk.*; do
    jq -R . "$c" | jq -s '{devices: .}' >"$c.json"
    api POST /v1/device-groups/scale/members "$c.json" >/dev/null
done
say "group scale has $N members"
printf '{"device_groups":["scale"],"command":{"request_type":"ProfileList"},"push":true}' \
    >"$TMP/cmd.json"
T_CMD0=$(date +%s.%N)
api POST /v1/commands "$TMP/cmd.json" >"$TMP/cmd.out"
jq -e ".queued == $N" "$TMP/cmd.out" >/dev/null || die "queued: $(cat "$TMP/cmd.out")"
say "ProfileList queued for $N devices and pushed"

# All answered when no device has a command waiting (the queue depth in /metrics is 0).
while :; do
    [ "$(left)" -gt 0 ] || die "time limit reached waiting for results"
    kill -0 "$SIM_PID" 2>/dev/null || break
    [ "$(metric 'scepter_queue_depth ')" = "0" ] && break
    sleep 0.5
done
T_CMD1=$(date +%s.%N)
CMD_S=$(awk "BEGIN{print $T_CMD1-$T_CMD0}")
SCEPTER_RSS=$(peak_rss_kb "$SCEPTER_PID")
SIM_RSS=$(peak_rss_kb "$SIM_PID")
say "every device answered; waiting for the simulator to go idle"
i=0
while kill -0 "$SIM_PID" 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 1200 ] && die "the simulator did not exit within 120 s of the last result"
    sleep 0.1
done
wait "$SIM_PID" || die "the simulator failed: $(tail -n 5 "$TMP/sim.log")"

jq --argjson n "$N" --argjson conc "$CONC" --arg store "${STORE%%:*}" \
    --argjson enroll_s "$ENROLL_S" --argjson cmd_s "$CMD_S" \
    --argjson scepter_rss_kb "$SCEPTER_RSS" --argjson sim_rss_kb "$SIM_RSS" \
    '{devices: $n, concurrency: $conc, store: $store, enroll_s: $enroll_s,
      command_to_all_s: $cmd_s, scepter_peak_rss_kb: $scepter_rss_kb,
      sim_peak_rss_kb: $sim_rss_kb, sim: .}' "$TMP/sim.json" >"$OUT"
jq -r '
  "devices \(.devices) (\(.store)), concurrency \(.concurrency)",
  "enrolled (profile, SCEP, Authenticate, TokenUpdate): \(.enroll_s | . * 10 | round / 10) s  (\(.devices / .enroll_s | round) devices/s)",
  "ProfileList to every device (queue, push, Idle, result, empty reply): \(.command_to_all_s | . * 100 | round / 100) s",
  "peak RSS: scepter \(.scepter_peak_rss_kb / 1024 | round) MB, simulator \(.sim_peak_rss_kb / 1024 | round) MB",
  "counters: \(.sim.counters | del(.results) | to_entries | map("\(.key)=\(.value)") | join(" "))",
  "results: \(.sim.counters.results | to_entries | map("\(.key)=\(.value)") | join(" "))",
  "",
  "type                    count    p50_ms    p90_ms    p99_ms    max_ms",
  (.sim.latency.types | to_entries[] |
    "\(.key | . + "                    " | .[0:20]) \(.value.count | tostring | "        " + . | .[-8:]) " +
    ([.value.p50_us, .value.p90_us, .value.p99_us, .value.max_us] |
      map(. / 1000 | . * 10 | round / 10 | tostring | "         " + . | .[-9:]) | join(" ")))
' "$OUT"
# The run is good only when every device enrolled and acknowledged the command.
jq -e --argjson n "$N" '.sim.counters.enrolled == $n and .sim.counters.failed == 0 and
    .sim.counters.results.Acknowledged >= $n' "$OUT" >/dev/null ||
    die "not every device enrolled and acknowledged (see $OUT)"
say "done; figures in $OUT"
exit 0
}
