#!/bin/sh
# scripts/bench.sh BUILD_DIR — every benchmark, one table, one JSON file (what `make bench` runs).
#
# Runs, from a release build tree (make bench configures build-bench/):
#   bench_mdm      the whole server on SQLite and on PostgreSQL (tests/bench/bench_mdm.c)
#   bench_apns     pushes/s to the local HTTP/2 sink over 1 and 4 connections
#   bench_store    the store alone, both backends (enqueue to 100,000 enrollments, 1,000,000
#                  queued rows, result reports)
#   bench_profiles per-device profile rendering
#   bench_ddm      DDM: new tokens for every device of a policy save, one declaration-items sync
#                  (computed alone), then the same through the store and the API handler for
#                  BENCH_DDM_DEVICES DDM devices on SQLite and on PostgreSQL (bench_ddm --save)
#   bench_sim_memory  the simulator's memory per idle device
#   sim-scale      the simulator's scale mode against a real scepter, scepserver and APNs
#                  test server (scripts/sim-scale.sh): enrollment by SCEP, a command to all
#   scep           SCEP issuances/s, Scepter's /scep beside Debian's scepserver, RSA-2048 and
#                  P-256 CSRs (scripts/bench-scep.sh; BENCH_SCEP_COUNT, 500)
# then prints every figure beside its target and writes bench/results.json.  Each program runs
# under `timeout`; the whole run is bounded (about 20 minutes on 2 cores).  Loopback only.
#
# Sizes can be lowered for a quick look:
#   BENCH_DEVICES (10000)  BENCH_BIG_DEVICES (100000; PostgreSQL: BENCH_BIG_DEVICES_PG, 20000)
#   BENCH_SECONDS (5)
#   BENCH_STORE_DEVICES (100000)  BENCH_STORE_ROUNDS (10)  BENCH_APNS_COUNT (100000)
#   BENCH_DDM_DEVICES (100000)  BENCH_SIM_DEVICES (100000)  BENCH_SIM_SCALE_DEVICES (10000; ~4 minutes: every device
#   does a real SCEP enrollment with Debian's scepserver, ~40 CPU-ms across the processes)
#   BENCH_ONLY ("mdm apns store profiles ddm sim simscale": a subset)
set -u

B=${1:?usage: scripts/bench.sh BUILD_DIR}
B=$(cd "$B" && pwd) || exit 2
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT_DIR=$SRC/bench
mkdir -p "$OUT_DIR"
TMP=$(mktemp -d /tmp/scepter-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM

export SCEPTER_BINARY_DIR="$B" SCEPTER_SOURCE_DIR="$SRC"
export SCEPTER_APNS_PKI="$B/apns-pki"

DEVICES=${BENCH_DEVICES:-10000}
BIG=${BENCH_BIG_DEVICES:-100000}
# Enrolling 100,000 devices one check-in at a time takes ~7 minutes on PostgreSQL (~230
# devices/s here): the PostgreSQL run uses a smaller large set unless asked for more.
BIG_PG=${BENCH_BIG_DEVICES_PG:-20000}
SECONDS_EACH=${BENCH_SECONDS:-5}
STORE_DEVICES=${BENCH_STORE_DEVICES:-100000}
STORE_ROUNDS=${BENCH_STORE_ROUNDS:-10}
APNS_COUNT=${BENCH_APNS_COUNT:-100000}
SIM_DEVICES=${BENCH_SIM_DEVICES:-100000}
DDM_DEVICES=${BENCH_DDM_DEVICES:-100000}
SIM_SCALE_DEVICES=${BENCH_SIM_SCALE_DEVICES:-10000}
ONLY=${BENCH_ONLY:-mdm apns store profiles ddm sim simscale scep}
FIGS=$TMP/figures.tsv # bench, name, value, unit, target
: >"$FIGS"
FAILED=""
START=$(date +%s)

[ -f "$SCEPTER_APNS_PKI/topic" ] || sh "$SRC/tests/apns-server/make-test-pki.sh" "$SCEPTER_APNS_PKI" >/dev/null

wants() {
    case " $ONLY " in *" $1 "*) return 0 ;; esac
    return 1
}

# run NAME SECONDS PROGRAM ARGS...: output to $TMP/NAME.out, shown as it comes.
run() {
    name=$1
    limit=$2
    shift 2
    echo
    echo "== $name: $*"
    { timeout -k 10 "$limit" "$@" 2>"$TMP/$name.err"; echo $? >"$TMP/$name.rc"; } |
        tee "$TMP/$name.out"
    rc=$(cat "$TMP/$name.rc")
    if [ "$rc" -ne 0 ]; then
        echo "!! $name exited with $rc (124 = timed out after $limit s); its stderr ends:"
        tail -n 15 "$TMP/$name.err"
        FAILED="$FAILED $name"
    fi
    return 0
}

# Table lines "  <name, single spaces>   <value> <unit> [<target>] ..." -> figures.
# PREFIX is put before every name; SECTION lines ("== x (...)") become part of the name.
table_figures() {
    awk -v bench="$1" -v prefix="$2" -v FS='\t' '
        /^== / { sec = $0; sub(/^== /, "", sec); sub(/ \(.*/, "", sec); next }
        /^  [^ ]/ {
            line = substr($0, 3)
            if (!match(line, /   *-?[0-9][0-9.]*( |$)/)) next
            name = substr(line, 1, RSTART - 1)
            rest = substr(line, RSTART)
            sub(/^ +/, "", rest)
            n = split(rest, w, " ")
            value = w[1]; unit = (n >= 2) ? w[2] : ""; target = ""
            if (n >= 3 && w[3] ~ /^[<>]=/) target = w[3]
            if (name == "figure") next
            full = prefix name
            if (sec != "") full = prefix sec ": " name
            printf "%s\t%s\t%s\t%s\t%s\n", bench, full, value, unit, target
        }' "$3" >>"$FIGS"
}

# ---------------------------------------------------------------------------------------------
if wants mdm; then
    for backend in sqlite postgres; do
        big=$BIG
        [ "$backend" = postgres ] && big=$BIG_PG
        run "mdm-$backend" 1200 "$B/tests/bench/bench_mdm" --backend "$backend" \
            --devices "$DEVICES" --big-devices "$big" --seconds "$SECONDS_EACH" \
            --json "$TMP/mdm-$backend.json"
        table_figures "mdm" "[$backend] " "$TMP/mdm-$backend.out"
    done
fi

if wants apns; then
    run apns 300 "$B/tests/bench/bench_apns" --count "$APNS_COUNT" --connections 1,4 \
        --streams 1000 --json
    awk -v FS=',' '/^\{"bench":"apns"/ {
            c = ""; r = ""
            for (i = 1; i <= NF; i++) {
                split($i, kv, ":"); k = kv[1]; gsub(/[{}"]/, "", k); v = kv[2]; gsub(/[{}"]/, "", v)
                if (k == "connections") c = v
                if (k == "pushes_per_s") r = v
            }
            printf "apns\tAPNs pushes/s, %s connection(s), sink max streams 1000\t%s\tpushes/s\t%s\n",
                c, r, (c == 1 ? ">=50000" : "")
        }' "$TMP/apns.out" >>"$FIGS"
fi

if wants store; then
    run store 1800 "$B/tests/bench/bench_store" --backend both --devices "$STORE_DEVICES" \
        --rounds "$STORE_ROUNDS"
    table_figures "store" "" "$TMP/store.out"
fi

if wants profiles; then
    run profiles 300 "$B/tests/bench/bench_profiles" "$STORE_DEVICES"
    table_figures "profiles" "" "$TMP/profiles.out"
fi

if wants ddm; then
    run ddm 600 "$B/tests/bench/bench_ddm" "$STORE_DEVICES"
    table_figures "ddm" "" "$TMP/ddm.out"
    for backend in sqlite postgres; do
        run "ddm-save-$backend" 1800 "$B/tests/bench/bench_ddm" --save "$backend" "$DDM_DEVICES"
        table_figures "ddm" "" "$TMP/ddm-save-$backend.out"
    done
fi

if wants sim; then
    run sim-memory 300 "$B/tests/sim/bench_sim_memory" "$SIM_DEVICES"
    awk -v FS=',' '/^\{/ {
            for (i = 1; i <= NF; i++) {
                split($i, kv, ":"); k = kv[1]; gsub(/[{}" ]/, "", k); v = kv[2]; gsub(/[{}" ]/, "", v)
                if (k == "devices") d = v
                if (k == "record_bytes_per_device") printf "sim\tsimulator memory per idle device (%s devices)\t%s\tB\t\n", d, v
            }
        }' "$TMP/sim-memory.out" >>"$FIGS"
fi

if wants simscale; then
    SIM_SCALE_DEVICES=$SIM_SCALE_DEVICES SIM_SCALE_OUT="$TMP/sim-scale.json" SIM_SCALE_LIMIT_S=1700 \
        run sim-scale 1800 "$SRC/scripts/sim-scale.sh" "$B"
    if [ -s "$TMP/sim-scale.json" ]; then
        cp "$TMP/sim-scale.json" "$OUT_DIR/sim-scale.json"
        jq -r '
            "simscale\tsimulated devices enrolled by SCEP (\(.devices), \(.store))\t\(.devices / .enroll_s | floor)\tdevices/s\t",
            "simscale\tProfileList to \(.devices) simulated devices: queued -> all answered\t\(.command_to_all_s * 100 | round / 100)\ts\t",
            "simscale\tscepter peak RSS, \(.devices) simulated devices\t\(.scepter_peak_rss_kb / 1024 | round)\tMB\t",
            (.sim.latency.types | to_entries[] |
              "simscale\tsim \(.key) p99 (\(.value.count))\t\(.value.p99_us / 1000 | . * 10 | round / 10)\tms\t")
        ' "$TMP/sim-scale.json" >>"$FIGS"
    fi
fi

if wants scep; then
    BENCH_SCEP_OUT="$TMP/scep.json" run scep 600 "$SRC/scripts/bench-scep.sh" "$B"
    if [ -s "$TMP/scep.json" ]; then
        cp "$TMP/scep.json" "$OUT_DIR/scep.json"
        jq -r '"scep\tSCEP issuances/s, \(.label), \(.key) CSRs (\(.ok)/\(.count) issued)\t\(.per_second)\t/s\t"' \
            "$TMP/scep.json" >>"$FIGS"
    fi
fi

# ---------------------------------------------------------------------------------------------
ELAPSED=$(($(date +%s) - START))
echo
echo "== Scepter benchmarks: $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ), ${ELAPSED} s"
awk -v FS='\t' '
    function pass(v, t,   n) {
        if (t == "") return ""
        n = substr(t, 3) + 0
        if (substr(t, 1, 1) == ">") return (v + 0 >= n) ? "PASS" : "FAIL"
        return (v + 0 <= n && v + 0 >= 0) ? "PASS" : "FAIL"
    }
    { printf "  %-9s %-66s %12s %-9s %-9s %s\n", $1, substr($2, 1, 66), $3, $4, $5, pass($3, $5) }
' "$FIGS"

# bench/results.json: every figure with its target and verdict.
awk -v FS='\t' -v when="$(date -u +%Y-%m-%dT%H:%M:%SZ)" -v cpus="$(nproc)" \
    -v elapsed="$ELAPSED" -v failed="$FAILED" '
    function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return s }
    function num(s) { return (s ~ /^-?[0-9]+(\.[0-9]+)?$/) ? s : "null" }
    BEGIN { printf "{\n  \"generated\": \"%s\",\n  \"cpus\": %d,\n  \"seconds\": %d,\n", when, cpus, elapsed
            n = split(failed, f, " "); printf "  \"failed\": ["
            for (i = 1; i <= n; i++) printf "%s\"%s\"", (i > 1 ? ", " : ""), esc(f[i])
            printf "],\n  \"figures\": [" }
    {
        t = $5; v = $3 + 0; p = "null"
        if (t != "") {
            lim = substr(t, 3) + 0
            p = (substr(t, 1, 1) == ">") ? (v >= lim ? "true" : "false") : ((v <= lim && v >= 0) ? "true" : "false")
        }
        printf "%s\n    {\"bench\": \"%s\", \"name\": \"%s\", \"value\": %s, \"unit\": \"%s\", \"target\": %s, \"pass\": %s}",
            (NR > 1 ? "," : ""), esc($1), esc($2), num($3), esc($4), (t == "" ? "null" : "\"" esc(t) "\""), p
    }
    END { printf "\n  ]\n}\n" }' "$FIGS" >"$OUT_DIR/results.json"
echo "wrote bench/results.json"
if [ -n "$FAILED" ]; then
    echo "failed:$FAILED"
    exit 1
fi
exit 0
