#!/bin/bash
# scripts/soak.sh BUILD_DIR — the soak (`make soak`, not in CI): SOAK_SECONDS (3600) of mixed
# traffic at half the measured capacity, sampled every 10 s, judged at the end.
#
# Starts, on loopback only: Debian's scepserver (the devices' CA), the HTTP/2 APNs test
# server, a webhook receiver (scripts/soak-webhook.py) and scepter (SQLite, or PostgreSQL with
# SOAK_STORE=postgres://...).  One scepter-sim process enrolls SOAK_DEVICES (200) devices by
# SCEP and answers pushes for the whole run; the operator puts them in a group.
#
# Capacity: three ProfileList fan-outs to the whole group back to back, timed until the queue
# is empty (queue, push through APNs, Idle, command, result, empty reply): commands per second.
# The soak then runs at half of it: one fan-out every 2 × (measured time of one), a push
# without a command (an Idle poll per device) half-way between two fan-outs, API reads (device
# list, one device, its commands, the events) about once a second, SOAK_ENROLL (5) new
# devices enrolled every 30 s by a short-lived simulator, and a webhook event for every
# check-in and result.
#
# Every 10 s one CSV line (SOAK_OUT/soak.csv): elapsed seconds, scepter's RSS (kB) and open
# descriptors, the database's size (bytes, with its WAL), device-request latency p50/p99 (ms,
# over the 10 s, from /metrics' histogram of the checkin and connect routes, interpolated in
# the bucket), requests in the window, queue depth, commands acknowledged so far, webhook
# events received, devices enrolled, memory SQLite holds (kB; its page caches included), RSS
# by kind (anonymous, file-backed, shared memory: /proc's RssAnon, RssFile, RssShmem) and
# glibc's heap (mallinfo2 from /metrics: bytes in use, bytes free but held).  At the end: the
# PNG plot (gnuplot) of RSS (with the heap in use and SQLite's part), descriptors and p99 over
# time, summary.txt, and the verdict:
#   - RSS and descriptors flat after warm-up: over windows of SECS/12 (5 minutes of an hour),
#     the last window at most 5 % above the first window of the second half — RSS by the
#     windows' medians, descriptors by their floors (the devices' connections of the moment
#     come and go by the dozen; a leak raises the floor), or at most 5 more;
#   - p99 stable: the median p99 of the last quarter at most 2 × (+ 10 ms) that of the second;
#   - nothing lost: every command the operator queued has, in the store, exactly one queue row
#     per device it was queued for, finished and Acknowledged; no (device, command) twice; no
#     webhook event left in the outbox or dead; the simulator saw no failure;
#   - a clean shutdown after the load: SIGTERM, exit status 0 within 10 s.
# SOAK_HEAPTRACK=FILE runs scepter under heaptrack (see below), SOAK_KEEP=1 keeps the temporary
# directory (the database, the logs).
# Exit status 0 when all hold.  Every wait is bounded; everything started is stopped.
set -eu
{

B=${1:?usage: scripts/soak.sh BUILD_DIR}
B=$(cd "$B" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SOAK_SECONDS:-3600}
N=${SOAK_DEVICES:-200}
ENROLL=${SOAK_ENROLL:-5}
STORE=${SOAK_STORE:-}
OUT=${SOAK_OUT:-$B/soak}
case "$SECS$N$ENROLL" in *[!0-9]*) echo "soak: SOAK_SECONDS, SOAK_DEVICES and SOAK_ENROLL are whole numbers" >&2; exit 2 ;; esac
[ "$SECS" -ge 120 ] || { echo "soak: SOAK_SECONDS must be at least 120" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d /tmp/scepter-soak.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 1 100); do # 10 s for a clean exit, then SIGKILL
        alive=0
        for p in $PIDS; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.1
    done
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    [ -n "${SOAK_KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
START=$(date +%s)
say() { echo "soak [$(($(date +%s) - START))s] $*"; }
die() { echo "soak: $*" >&2; exit 1; }
for t in curl jq openssl scepserver sqlite3 gnuplot python3; do
    command -v $t >/dev/null || die "$t is missing (scripts/deps.sh soak)"
done

wait_file() { # FILE LOG: 30 s at most
    i=0
    while [ ! -s "$1" ]; do
        i=$((i + 1))
        [ $i -gt 300 ] && die "$1 did not appear within 30 s (see $2)"
        sleep 0.1
    done
}
free_port() { # a loopback port nobody listens on, below the ephemeral range (bounded tries)
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        p=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 22000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo $p; return 0; fi
    done 2>/dev/null
    die "no free port"
}

# --- PKI, the devices' CA, APNs, the webhook receiver ----------------------------------------
PKI=$B/apns-pki
[ -f "$PKI/topic" ] || sh "$SRC/tests/apns-server/make-test-pki.sh" "$PKI" >/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=soak signing" \
    -keyout "$TMP/signing.key" -out "$TMP/signing.csr" 2>/dev/null
printf 'keyUsage=critical,digitalSignature\n' >"$TMP/signing.ext"
openssl x509 -req -in "$TMP/signing.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
    -CAserial "$TMP/ca.srl" -days 2 -extfile "$TMP/signing.ext" -out "$TMP/signing.pem" 2>/dev/null
openssl rand -hex 24 >"$TMP/api_key"
API_KEY=$(cat "$TMP/api_key")
HOOK_SECRET=$(openssl rand -hex 16)

scepserver ca -init -depot "$TMP/depot" -keySize 2048 >/dev/null 2>&1 || die "scepserver ca -init failed"
SCEP_PORT=$(free_port)
scepserver -depot "$TMP/depot" -port "$SCEP_PORT" -challenge soak-secret >"$TMP/scepserver.log" 2>&1 &
PIDS="$PIDS $!"
i=0
until curl -fsS "http://127.0.0.1:$SCEP_PORT/scep?operation=GetCACaps" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 150 ] && die "scepserver did not answer within 15 s (see $TMP/scepserver.log)"
    sleep 0.1
done
# scepserver's file depot rescans index.txt on every request (see scripts/sim-scale.sh).
(while [ -f "$TMP/depot/index.txt" ]; do : >"$TMP/depot/index.txt"; sleep 10; done) >/dev/null 2>&1 &
PIDS="$PIDS $!"

LIFETIME=$((SECS + 1200))
"$B/tests/apns-server/apns-test-server" --cert "$PKI/server.pem" --key "$PKI/server.key" \
    --client-ca "$PKI/pushca.pem" --listen 127.0.0.1:0 --port-file "$TMP/apns.port" \
    --control 127.0.0.1:0 --control-port-file "$TMP/control.port" --max-streams 1000 \
    --log-size 0 --max-lifetime "$LIFETIME" --quiet >"$TMP/apns.log" 2>&1 &
PIDS="$PIDS $!"
wait_file "$TMP/apns.port" "$TMP/apns.log"
wait_file "$TMP/control.port" "$TMP/apns.log"
CONTROL=http://127.0.0.1:$(cat "$TMP/control.port")

python3 "$SRC/scripts/soak-webhook.py" "$TMP/hook.port" "$HOOK_SECRET" >"$TMP/hook.log" 2>&1 &
PIDS="$PIDS $!"
wait_file "$TMP/hook.port" "$TMP/hook.log"
HOOK=http://127.0.0.1:$(cat "$TMP/hook.port")

# --- scepter ---------------------------------------------------------------------------------
DB=$TMP/scepter.db
[ -n "$STORE" ] || STORE="sqlite:$DB"
PORT=$(free_port)
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
enroll_scep_challenge = soak-secret
enroll_open = true
enroll_rate_limit = 0
signing_cert_file = $TMP/signing.pem
signing_key_file = $TMP/signing.key
push_topic = $(cat "$PKI/topic")
apns_url = https://localhost:$(cat "$TMP/apns.port")
apns_ca_file = $PKI/ca.pem
apns_cert_file = $PKI/push.pem
apns_key_file = $PKI/push.key
webhook_url = $HOOK/events
webhook_secret = $HOOK_SECRET
log_level = warn
CONF
# SOAK_HEAPTRACK=FILE: scepter runs under heaptrack (Debian's heaptrack), its profile to FILE
# (heaptrack_print FILE.zst shows what stays allocated); the figures describe that slower run.
WRAP=()
[ -z "${SOAK_HEAPTRACK:-}" ] || WRAP=(heaptrack -o "$SOAK_HEAPTRACK")
SCEPTER_API_KEY_FILE="$TMP/api_key" "${WRAP[@]}" "$B/mdm/scepter" --config "$TMP/scepter.conf" \
    >"$TMP/scepter.log" 2>&1 &
SCEPTER_PID=$!
wait_file "$TMP/scepter.ports" "$TMP/scepter.log"
if [ ${#WRAP[@]} -gt 0 ]; then # the wrapper's child is scepter: that is the one measured
    WRAP_PID=$SCEPTER_PID
    SCEPTER_PID=$(pgrep -P "$WRAP_PID" -x scepter) || die "no scepter under heaptrack"
    PIDS="$PIDS $SCEPTER_PID $WRAP_PID"
else
    PIDS="$PIDS $SCEPTER_PID"
fi
URL=https://127.0.0.1:$PORT
say "scepter on $URL (${STORE%%:*}), APNs test server, scepserver, webhook receiver"

api() { # METHOD PATH [BODY-FILE]
    body=()
    [ $# -ge 3 ] && body=(-H 'Content-Type: application/json' --data-binary "@$3")
    curl -sS --max-time 60 --cacert "$PKI/ca.pem" -H "Authorization: Bearer $API_KEY" \
        "${body[@]}" -X "$1" "$URL$2"
}
METRICS=$TMP/metrics.txt
fetch_metrics() { curl -sS --max-time 30 --cacert "$PKI/ca.pem" "$URL/metrics" >"$METRICS.new" && mv "$METRICS.new" "$METRICS"; }
metric() { awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%.0f\n", s + 0 }' "$METRICS"; }
queue_depth() { fetch_metrics && metric 'scepter_queue_depth '; }
# Until the queue is empty (LIMIT seconds at most): 0, or 1 on time-out.
wait_queue_empty() {
    local until=$(($(date +%s) + $1))
    while [ "$(date +%s)" -lt "$until" ]; do
        [ "$(queue_depth)" = "0" ] && return 0
        sleep 0.2
    done
    return 1
}

# --- the devices -----------------------------------------------------------------------------
SIM_SECS=$((SECS + 900))
"$B/tests/sim/scepter-sim" --server "$URL" --ca "$PKI/ca.pem" --devices "$N" --shared-key \
    --platform-mix mac=40,iphone=40,ipad=20 --seed 1 --concurrency 64 --apns-control "$CONTROL" \
    --duration "$SIM_SECS" --ready-file "$TMP/sim.ready" --report json --log-level warn \
    >"$TMP/sim.json" 2>"$TMP/sim.log" &
SIM_PID=$!
PIDS="$PIDS $SIM_PID"
i=0
until [ -s "$TMP/sim.ready" ]; do
    i=$((i + 1))
    kill -0 "$SIM_PID" 2>/dev/null || die "the simulator exited during enrollment: $(tail -n 5 "$TMP/sim.log")"
    [ $i -gt 6000 ] && die "enrollment of $N devices took over 600 s"
    sleep 0.1
done
[ "$(cat "$TMP/sim.ready")" = "enrolled $N" ] || die "the simulator: $(cat "$TMP/sim.ready") of $N"
printf '{"name":"soak"}' >"$TMP/group.json"
api POST /v1/device-groups "$TMP/group.json" >/dev/null
api GET "/v1/devices?enrolled=true&limit=100000" | jq -r '.devices[].udid' >"$TMP/udids"
[ "$(wc -l <"$TMP/udids")" -eq "$N" ] || die "the API listed $(wc -l <"$TMP/udids") devices, not $N"
jq -R . "$TMP/udids" | jq -s '{devices: .}' >"$TMP/members.json"
api POST /v1/device-groups/soak/members "$TMP/members.json" >/dev/null
say "$N devices enrolled, in group soak"

printf '{"device_groups":["soak"],"command":{"request_type":"ProfileList"},"push":true}' >"$TMP/cmd.json"
printf '{"device_groups":["soak"]}' >"$TMP/push.json"
: >"$TMP/api-errors"
: >"$TMP/commands.txt" # one line per fan-out: command UUID and the number queued
fan_out() {
    local r
    r=$(api POST /v1/commands "$TMP/cmd.json") || return 1
    printf '%s\n' "$r" | jq -e --argjson n "$N" '.queued == $n' >/dev/null || {
        echo "soak: fan-out: $r" >&2
        return 1
    }
    printf '%s %s\n' "$(printf '%s\n' "$r" | jq -r '.command_uuid // .uuid')" \
        "$(printf '%s\n' "$r" | jq -r .queued)" >>"$TMP/commands.txt"
}

# --- capacity --------------------------------------------------------------------------------
t0=$(date +%s.%N)
for _ in 1 2 3; do fan_out || die "the capacity fan-out failed"; done
wait_queue_empty 600 || die "the capacity fan-outs did not finish within 600 s"
t1=$(date +%s.%N)
CAP_S=$(awk "BEGIN{print ($t1 - $t0) / 3}")
CAPACITY=$(awk "BEGIN{printf \"%.1f\", $N / $CAP_S}")
PERIOD_MS=$(awk "BEGIN{p = 2000 * $CAP_S; printf \"%d\", (p < 500 ? 500 : p)}")
PERIOD=$(awk "BEGIN{printf \"%.2f\", $PERIOD_MS / 1000}")
say "capacity: one fan-out to $N devices in ${CAP_S} s = $CAPACITY commands/s; the soak: one every ${PERIOD} s"

# --- the soak --------------------------------------------------------------------------------
CSV=$OUT/soak.csv
echo "t_s,rss_kb,fds,db_bytes,p50_ms,p99_ms,requests,queue_depth,acknowledged,webhook_events,enrolled,sqlite_kb,rss_anon_kb,rss_file_kb,rss_shmem_kb,heap_in_use_kb,heap_free_kb" >"$CSV"
# Percentiles of the device routes over the window, from the delta of two histogram scrapes.
hist() { awk '/^scepter_http_request_duration_seconds_bucket\{route="(checkin|connect)"/ {
        match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); c[le] += $NF }
    END { for (k in c) print k, c[k] }' "$METRICS" | sort -g >"$1"; }
percentiles() { # PREV CUR -> "p50_ms p99_ms requests"
    join "$1" "$2" | awk '{ le[NR] = $1; d[NR] = $3 - $2 } END {
        n = d[NR]; if (n <= 0) { print "0 0 0"; exit }
        split("0.5 0.99", q, " ")
        for (j = 1; j <= 2; j++) {
            want = q[j] * n; lo = 0; prev = 0
            for (i = 1; i <= NR; i++) {
                if (d[i] >= want) {
                    hi = (le[i] == "+Inf") ? lo * 2 : le[i]
                    v = (d[i] > prev) ? lo + (hi - lo) * (want - prev) / (d[i] - prev) : hi
                    out = out sprintf("%.2f ", v * 1000); break
                }
                lo = (le[i] == "+Inf") ? lo : le[i]; prev = d[i]
            }
        }
        print out n }'
}
fetch_metrics || die "/metrics did not answer"
hist "$TMP/hist.prev"
SOAK0=$(date +%s)
END=$((SOAK0 + SECS))
sample() {
    local now rss fds db p parts
    now=$(($(date +%s) - SOAK0))
    rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SCEPTER_PID/status")
    # RSS by kind: anonymous (heap, stacks), file pages mapped (code, SQLite's mmap if any),
    # shared memory (SQLite's WAL index, the -shm file).
    parts=$(awk '/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } /^RssShmem:/ { s = $2 }
        END { printf "%d,%d,%d", a, f, s }' "/proc/$SCEPTER_PID/status")
    fds=$(find "/proc/$SCEPTER_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    db=$(cat "$DB" "$DB-wal" 2>/dev/null | wc -c)
    fetch_metrics || { echo "soak: /metrics did not answer at ${now}s" >&2; return 0; }
    hist "$TMP/hist.cur"
    p=$(percentiles "$TMP/hist.prev" "$TMP/hist.cur")
    mv "$TMP/hist.cur" "$TMP/hist.prev"
    printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$now" "$rss" "$fds" "$db" $(echo "$p" | tr ' ' '\n' | head -n 3) \
        "$(metric 'scepter_queue_depth ')" \
        "$(metric 'scepter_commands_total{event="acknowledged"')" \
        "$(curl -sS --max-time 10 "$HOOK/stats" | jq .distinct)" \
        "$(sqlite3 "file:$DB?mode=ro" 'SELECT COUNT(*) FROM enrollments' 2>/dev/null || echo 0)" \
        "$(($(metric 'scepter_sqlite_memory_bytes ') / 1024))" "$parts" \
        "$(($(metric 'scepter_malloc_bytes{kind="in_use"}') / 1024))" \
        "$(($(metric 'scepter_malloc_bytes{kind="free"}') / 1024))" >>"$CSV"
}

# API reads, about one a second, in the background for the whole soak.
(
    while [ "$(date +%s)" -lt "$END" ]; do
        u=$(shuf -n 1 "$TMP/udids")
        api GET "/v1/devices?limit=50" >/dev/null 2>&1 || echo "api read failed" >>"$TMP/api-errors"
        api GET "/v1/devices/$u" >/dev/null 2>&1 || echo "api read failed" >>"$TMP/api-errors"
        api GET "/v1/devices/$u/commands" >/dev/null 2>&1 || echo "api read failed" >>"$TMP/api-errors"
        api GET "/v1/events?limit=20" >/dev/null 2>&1 || echo "api read failed" >>"$TMP/api-errors"
        sleep 1
    done
) &
READER=$!
PIDS="$PIDS $READER"

seed=1000
ms() { date +%s%3N; }
next_sample=$SOAK0
next_fan=$(ms)
next_push=$((next_fan + PERIOD_MS / 2))
next_enroll=$((SOAK0 + 15))
fanouts=0
pushes=0
enroll_failed=0
lastprog=0
while :; do
    now=$(date +%s)
    [ "$now" -ge "$END" ] && break
    kill -0 "$SCEPTER_PID" 2>/dev/null || die "scepter exited at $((now - SOAK0)) s: $(tail -n 5 "$TMP/scepter.log")"
    kill -0 "$SIM_PID" 2>/dev/null || die "the simulator exited at $((now - SOAK0)) s: $(tail -n 5 "$TMP/sim.log")"
    if [ "$now" -ge "$next_sample" ]; then
        sample
        next_sample=$((next_sample + 10))
    fi
    if [ "$(ms)" -ge "$next_fan" ]; then
        fan_out || die "a fan-out failed at $((now - SOAK0)) s"
        fanouts=$((fanouts + 1))
        next_fan=$((next_fan + PERIOD_MS))
    fi
    if [ "$(ms)" -ge "$next_push" ]; then
        api POST /v1/push "$TMP/push.json" >/dev/null || echo "soak: a push failed" >&2
        pushes=$((pushes + 1))
        next_push=$((next_push + PERIOD_MS))
    fi
    if [ "$now" -ge "$next_enroll" ]; then
        # New devices, each with a seed of its own (new UDIDs), enrolled by a short-lived
        # simulator in the background.
        seed=$((seed + 1))
        timeout 120 "$B/tests/sim/scepter-sim" --server "$URL" --ca "$PKI/ca.pem" --devices "$ENROLL" \
            --shared-key --seed "$seed" --concurrency 4 --enroll-threads 1 --enroll-only \
            --report json --log-level error >"$TMP/enroll.$seed.json" 2>>"$TMP/enroll.log" &
        next_enroll=$((next_enroll + 30))
    fi
    if [ $(((now - SOAK0) / 300)) -ne "$lastprog" ]; then
        lastprog=$(((now - SOAK0) / 300))
        say "$((now - SOAK0)) s: $fanouts fan-outs, $pushes pushes, $(tail -n 1 "$CSV")"
    fi
    sleep 0.1
done
sample
say "traffic stopped after $SECS s: $fanouts fan-outs, $pushes push-only rounds"
wait "$READER" 2>/dev/null || true

# --- drain and judge -------------------------------------------------------------------------
wait_queue_empty 300 || say "the queue is not empty 300 s after the end"
i=0
while [ $i -lt 600 ]; do
    fetch_metrics
    [ "$(metric 'scepter_outbox_pending ')" = "0" ] && break
    i=$((i + 1))
    sleep 0.5
done
sleep 2
for f in "$TMP"/enroll.*.json; do
    [ -s "$f" ] || continue
    jq -e '.counters.failed == 0' "$f" >/dev/null 2>&1 || enroll_failed=$((enroll_failed + 1))
done
kill -INT "$SIM_PID" 2>/dev/null || true
i=0
while kill -0 "$SIM_PID" 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 600 ] && die "the simulator did not stop within 60 s of SIGINT"
    sleep 0.1
done
wait "$SIM_PID" || true

# The store: every fan-out's rows, exactly one per device, each finished and Acknowledged.
Q="sqlite3 file:$DB?mode=ro"
[ "${STORE%%:*}" = "sqlite" ] || Q="psql -At $STORE -c"
lost=0
checked=0
while read -r uuid queued; do
    got=$($Q "SELECT COUNT(*), COALESCE(SUM(state = 1 AND status = 1), 0), COUNT(DISTINCT enrollment_id) FROM queue WHERE command_uuid = '$uuid'" | tr '|' ' ')
    set -- $got
    checked=$((checked + $1))
    if [ "$1" != "$queued" ] || [ "$2" != "$queued" ] || [ "$3" != "$queued" ]; then
        lost=$((lost + 1))
        echo "soak: command $uuid: queued $queued, rows $1, acknowledged $2, devices $3" >&2
    fi
done <"$TMP/commands.txt"
dups=$($Q "SELECT COUNT(*) FROM (SELECT 1 FROM queue GROUP BY enrollment_id, command_uuid HAVING COUNT(*) > 1) d")
fetch_metrics
outbox=$(metric 'scepter_outbox_pending ')
dead=$(metric 'scepter_outbox_dead ')
hook=$(curl -sS --max-time 10 "$HOOK/stats")
sim_failed=$(jq '.counters.failed' "$TMP/sim.json" 2>/dev/null || echo '?')
sim_acks=$(jq '.counters.results.Acknowledged' "$TMP/sim.json" 2>/dev/null || echo '?')
api_errors=$(wc -l <"$TMP/api-errors" 2>/dev/null || echo 0)
ncmd=$(wc -l <"$TMP/commands.txt")
peak_kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SCEPTER_PID/status")

# Shutdown after the load: SIGTERM, then the time until scepter has exited (60 s at most).
t0=$(ms)
kill -TERM "$SCEPTER_PID" 2>/dev/null || true
i=0
while kill -0 "$SCEPTER_PID" 2>/dev/null && [ $i -lt 600 ]; do
    i=$((i + 1))
    sleep 0.1
done
if kill -0 "$SCEPTER_PID" 2>/dev/null; then
    stop_ms=-1
    stop_status="still running 60 s after SIGTERM"
else
    stop_ms=$(($(ms) - t0))
    stop_status=0
    wait "${WRAP_PID:-$SCEPTER_PID}" 2>/dev/null || stop_status=$?
fi

# --- the verdict -----------------------------------------------------------------------------
# Median of column COL over rows with FROM <= t_s < TO.
median() { awk -F, -v c="$1" -v a="$2" -v b="$3" 'NR > 1 && $1 >= a && $1 < b { print $c }' "$CSV" |
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else print v[int((NR + 1) / 2)] }'; }
# Smallest value of column COL over FROM <= t_s < TO.
minimum() { awk -F, -v c="$1" -v a="$2" -v b="$3" 'NR > 1 && $1 >= a && $1 < b { print $c }' "$CSV" |
    sort -g | head -n 1; }
# Windows of SECS/12 (5 minutes of an hour, at least a minute): the first of the second half
# against the last.  RSS by its median; descriptors by their floor (the minimum: what scepter
# holds besides the devices' connections of the moment, which come and go by the dozen).
H=$((SECS / 2))
WIN=$((SECS / 12 > 60 ? SECS / 12 : 60))
rss_a=$(median 2 "$H" $((H + WIN)))
rss_b=$(median 2 $((SECS - WIN)) $((SECS + 20)))
# RSS less what SQLite holds (its page caches fill up to cache_size per connection as the
# database grows): what would be left to leak.
sql_a=$(median 12 "$H" $((H + WIN)))
sql_b=$(median 12 $((SECS - WIN)) $((SECS + 20)))
heap_a=$(median 16 "$H" $((H + WIN)))
heap_b=$(median 16 $((SECS - WIN)) $((SECS + 20)))
fds_a=$(minimum 3 "$H" $((H + WIN)))
fds_b=$(minimum 3 $((SECS - WIN)) $((SECS + 20)))
p99_a=$(median 6 $((SECS / 4)) "$H")
p99_b=$(median 6 $((SECS * 3 / 4)) $((SECS + 20)))
p50_all=$(median 5 0 $((SECS + 20)))
p99_all=$(median 6 0 $((SECS + 20)))
verdict=PASS
why=""
awk "BEGIN{exit !($rss_b <= $rss_a * 1.05)}" || { verdict=FAIL; why="$why rss"; }
awk "BEGIN{exit !($fds_b <= $fds_a * 1.05 || $fds_b <= $fds_a + 5)}" || { verdict=FAIL; why="$why fds"; }
awk "BEGIN{exit !($p99_b <= 2 * $p99_a + 10)}" || { verdict=FAIL; why="$why p99"; }
[ "$lost" -eq 0 ] && [ "$dups" = "0" ] || { verdict=FAIL; why="$why lost"; }
[ "$outbox" = "0" ] && [ "$dead" = "0" ] || { verdict=FAIL; why="$why webhooks"; }
[ "$sim_failed" = "0" ] || { verdict=FAIL; why="$why devices"; }
[ "$(printf '%s' "$hook" | jq '.bad_signature + .malformed')" = "0" ] || { verdict=FAIL; why="$why webhook-bodies"; }
# A clean exit (status 0) within 10 s of SIGTERM: in-flight requests finish, nothing waits out
# request_timeout (30 s).
[ "$stop_ms" -ge 0 ] && [ "$stop_ms" -le 10000 ] && [ "$stop_status" = "0" ] || { verdict=FAIL; why="$why shutdown"; }

growth() { awk "BEGIN{ if ($1 > 0) printf \"%+.1f %%\", ($2 - $1) * 100 / $1; else print \"n/a\" }"; }
{
    echo "soak: $SECS s of traffic, $(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), store ${STORE%%:*}"
    echo "devices: $N answering, $ENROLL enrolled every 30 s ($(($(tail -n 1 "$CSV" | cut -d, -f11))) enrollments at the end, $enroll_failed enrollment batches failed)"
    echo "capacity: one ProfileList fan-out to $N devices in $CAP_S s = $CAPACITY commands/s; soak: one fan-out every $PERIOD s (half), a command-less push between"
    echo "traffic: $fanouts fan-outs, $pushes push-only rounds, API reads ~4/s ($api_errors failed), webhook events $(printf '%s' "$hook" | jq -c '{distinct, deliveries, topics}')"
    echo "RSS (median of each window): $((rss_a / 1024)) MB in the first $WIN s of the second half, $((rss_b / 1024)) MB in the last $WIN s ($(growth "$rss_a" "$rss_b")); peak $((peak_kb / 1024)) MB"
    echo "RSS less SQLite's memory: $(((rss_a - sql_a) / 1024)) MB, then $(((rss_b - sql_b) / 1024)) MB ($(growth $((rss_a - sql_a)) $((rss_b - sql_b)))); SQLite held $((sql_a / 1024)) MB, then $((sql_b / 1024)) MB"
    echo "malloc'd and in use (mallinfo2, all arenas; SQLite's included): $((heap_a / 1024)) MB, then $((heap_b / 1024)) MB ($(growth "$heap_a" "$heap_b"))"
    echo "descriptors (floor of each window): $fds_a in the first $WIN s of the second half, $fds_b in the last $WIN s ($(growth "$fds_a" "$fds_b")); range over the run $(minimum 3 0 $((SECS + 20)))-$(awk -F, 'NR > 1 { print $3 }' "$CSV" | sort -g | tail -n 1)"
    echo "latency (device requests, per 10 s): median p50 $p50_all ms, median p99 $p99_all ms; p99 second quarter $p99_a ms, last quarter $p99_b ms"
    echo "database: $(($(tail -n 1 "$CSV" | cut -d, -f4) / 1024)) KiB at the end"
    echo "commands: $ncmd fan-outs (capacity ones included), $checked (device, command) rows checked, $lost commands with a row missing, not acknowledged or twice, $dups duplicate rows; simulator acknowledged $sim_acks, failed $sim_failed"
    echo "webhooks: outbox $outbox pending, $dead dead"
    echo "shutdown: SIGTERM after the run, scepter exited in $stop_ms ms (status $stop_status)"
    echo "verdict: $verdict${why:+ (failed:$why)}"
} | tee "$OUT/summary.txt"

gnuplot <<GP || echo "soak: gnuplot failed" >&2
set terminal pngcairo size 1100,700 font ",10" noenhanced
set output "$OUT/soak.png"
set datafile separator ","
set key top left
set multiplot layout 3,1 title "scepter soak: $SECS s, $N devices, fan-out every $PERIOD s ($CAPACITY cmd/s capacity)"
set xlabel "seconds"
set ylabel "RSS (MB)"
set offsets 0, 0, graph 0.35, 0
plot "$CSV" using 1:(\$2/1024) every ::1 with lines lw 2 title "RSS", \
     "$CSV" using 1:(\$16/1024) every ::1 with lines title "malloc in use (mallinfo2)", \
     "$CSV" using 1:(\$12/1024) every ::1 with lines title "of which SQLite (page caches)"
set offsets 0, 0, 0, 0
set ylabel "open fds"
plot "$CSV" using 1:3 every ::1 with lines lw 2 title "descriptors"
set ylabel "ms"
set logscale y
plot "$CSV" using 1:6 every ::1 with lines lw 2 title "p99 (10 s)", "$CSV" using 1:5 every ::1 with lines title "p50 (10 s)"
unset multiplot
GP
say "samples $CSV, plot $OUT/soak.png, summary $OUT/summary.txt"
[ "$verdict" = "PASS" ]
exit $?
}
