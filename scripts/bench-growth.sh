#!/bin/sh
# scripts/bench-growth.sh BUILD_DIR — the growth table (`make bench-growth`, not in CI).
#
# Does the cost of an operation grow with the fleet?  For each store size (10,000 and
# 100,000 enrolled devices; 1,000,000 too under BENCH_HUGE=1) it runs bench_mdm on PostgreSQL
# against a store seeded directly with SQL (generate_series: the devices, their enabled
# device channels, certificate bindings, and 10 finished commands of history per device),
# then prints, per size, the CPU per Idle poll (mTLS), per result report, per enrollment, the
# single-device enqueue, and the fan-out (one command to BENCH_GROWTH_DEVICES devices,
# enqueued, delivered and acknowledged; a policy saved for them: the API's answer).  The
# issue's target: each within 1.3x of the 10,000 row.
#
# bench_mdm's own devices (BENCH_GROWTH_DEVICES, 2000) enroll for real over TLS on top of the
# seeded ones; the seeded devices only make the tables big.  They are seeded as seen now
# (last_seen in the future, so the re-push job leaves them alone during the run) and their
# history as finished now (so the retention job does not delete it under the benchmark).
#
#   BENCH_GROWTH_SIZES ("10000 100000")  BENCH_HUGE=1 (adds 1000000)
#   BENCH_GROWTH_DEVICES (2000)  BENCH_SECONDS (2)  BENCH_GROWTH_OUT (a directory: keep each
#   size's whole bench_mdm output there)
# Figures are CPU per operation (scepter + PostgreSQL, from /proc): on a shared machine they
# are noisy (±30 %); compare rows of one run.  Loopback only; everything it starts it stops.
set -u

B=${1:?usage: scripts/bench-growth.sh BUILD_DIR}
B=$(cd "$B" && pwd) || exit 2
SRC=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/scepter-growth.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
export SCEPTER_BINARY_DIR="$B" SCEPTER_SOURCE_DIR="$SRC" SCEPTER_APNS_PKI="$B/apns-pki"

SIZES=${BENCH_GROWTH_SIZES:-10000 100000}
[ "${BENCH_HUGE:-0}" = 1 ] && SIZES="$SIZES 1000000"
DEVICES=${BENCH_GROWTH_DEVICES:-2000}
SECONDS_EACH=${BENCH_SECONDS:-2}
HISTORY=10

[ -x "$B/tests/bench/bench_mdm" ] || {
    echo "bench-growth: $B/tests/bench/bench_mdm not built (make bench-growth builds it)" >&2
    exit 2
}
[ -f "$SCEPTER_APNS_PKI/topic" ] ||
    sh "$SRC/tests/apns-server/make-test-pki.sh" "$SCEPTER_APNS_PKI" >/dev/null

# seed_sql N FILE: N devices with HISTORY finished commands each.
seed_sql() {
    cat >"$2" <<EOF
\\set n $1
\\set h $HISTORY
BEGIN;
SELECT extract(epoch FROM now())::bigint AS now \\gset
INSERT INTO devices (id, type, serial_number, model, product_name, platform, topic,
                     authenticated_at, created, updated)
SELECT 'GROWTH-' || lpad(i::text, 8, '0'), 1, 'GS' || i, 'iPhone14,2', 'iPhone', 'ios',
       'com.apple.mgmt.growth', :now, :now, :now
FROM generate_series(1, :n) AS i;
INSERT INTO enrollments (id, device_id, type, topic, push_token, push_magic, token_valid,
                         enabled, last_seen, token_updated_at, created)
SELECT d.id, d.id, 1, 'com.apple.mgmt.growth', sha256(convert_to(d.id, 'UTF8')),
       'PM-' || d.id, true, true, :now + 31536000, :now, :now
FROM devices d WHERE d.id LIKE 'GROWTH-%';
INSERT INTO cert_bindings (cert_hash, device_id, created)
SELECT encode(sha256(convert_to(d.id, 'UTF8')), 'hex'), d.id, :now
FROM devices d WHERE d.id LIKE 'GROWTH-%';
INSERT INTO commands (uuid, request_type, plist, created)
SELECT 'GROWTH-CMD-' || k, 'ProfileList', convert_to('<plist version="1.0"><dict/></plist>', 'UTF8'),
       :now
FROM generate_series(1, :h) AS k;
INSERT INTO queue (enrollment_id, command_uuid, priority, created, state, status, result_at, raw,
                   updated)
SELECT e.id, 'GROWTH-CMD-' || k, 0, :now, 1, 1, :now,
       convert_to('<plist version="1.0"><dict><key>Status</key><string>Acknowledged</string></dict></plist>', 'UTF8'),
       :now
FROM enrollments e CROSS JOIN generate_series(1, :h) AS k WHERE e.id LIKE 'GROWTH-%';
COMMIT;
EOF
}

# fig FILE NAME: the value of a bench_mdm figure line ("  NAME   VALUE unit ...").
fig() {
    awk -v name="$2" 'index($0, "  " name " ") == 1 {
        rest = substr($0, length(name) + 3); sub(/^ +/, "", rest); split(rest, w, " ")
        print w[1]; exit }' "$1"
}

FAILED=0
for n in $SIZES; do
    echo "== $n enrolled devices ($HISTORY finished commands each) + $DEVICES enrolled by bench_mdm"
    seed_sql "$n" "$TMP/seed-$n.sql"
    timeout -k 10 3600 "$B/tests/bench/bench_mdm" --backend postgres --devices "$DEVICES" \
        --big-devices 0 --mtls-enroll 0 --seconds "$SECONDS_EACH" --conns 32 \
        --seed-sql "$TMP/seed-$n.sql" >"$TMP/out-$n" 2>"$TMP/err-$n"
    rc=$?
    grep -E "seeded|CPU per|enqueue\+deliver|commands queued|single-device|RSS|cache memory" "$TMP/out-$n"
    [ -n "${BENCH_GROWTH_OUT:-}" ] && mkdir -p "$BENCH_GROWTH_OUT" && cp "$TMP/out-$n" "$BENCH_GROWTH_OUT/"
    if [ "$rc" -ne 0 ]; then
        echo "!! bench_mdm exited with $rc for $n; its stderr ends:"
        tail -n 15 "$TMP/err-$n"
        FAILED=1
    fi
done

echo
echo "Growth table (PostgreSQL; cpu-ms = scepter + database CPU per operation; s = wall)"
printf '%-10s %10s %10s %10s %10s %12s %12s %9s\n' "enrolled" "Idle mTLS" "result" "enroll" \
    "enqueue1" "fan-out s" "policy API s" "RSS MB"
for n in $SIZES; do
    f=$TMP/out-$n
    [ -f "$f" ] || continue
    printf '%-10s %10s %10s %10s %10s %12s %12s %9s\n' "$n" \
        "$(fig "$f" "CPU per Idle poll, mTLS (server + database)")" \
        "$(fig "$f" "CPU per result report (server + database)")" \
        "$(fig "$f" "CPU per enrollment, Mdm-Signature (server + database)")" \
        "$(fig "$f" "CPU per single-device enqueue (server + database)")" \
        "$(fig "$f" "enqueue+deliver+ack 1 command, $DEVICES devices")" \
        "$(fig "$f" "policy saved -> $DEVICES commands queued (API answer)")" \
        "$(fig "$f" "scepter peak RSS over the whole run")"
done
echo "(fan-out s: one command to $DEVICES devices enqueued, delivered and acknowledged;"
echo " policy API s: a policy saved for them, until the API answered with everything queued;"
echo " RSS MB: scepter's peak RSS over the run, $DEVICES connections held open at once among it)"
exit "$FAILED"
