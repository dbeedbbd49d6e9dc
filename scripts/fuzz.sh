#!/bin/sh
# scripts/fuzz.sh — coverage-guided fuzzing of every parser of untrusted input (`make fuzz`).
#
# Builds the targets of tests/fuzz/ with clang against libFuzzer, under ASan and UBSan, in
# FUZZ_BUILD_DIR (build-fuzz), then runs each one after the other for FUZZ_RUNS executions
# (10,000,000) and prints, per target: executions, executions/s, coverage (libFuzzer's cov:
# edges and ft: features), corpus size, time, and the crashes found.  Exit status 1 when any
# target crashed, leaked or timed out.
#
#   FUZZ_RUNS     executions per target (10000000)
#   FUZZ_TIME     also stop each target after this many seconds (0: no limit)
#   FUZZ_TARGETS  the targets to run (all: "device_body operator_json ...")
#   FUZZ_NICE     nice level of the fuzzers (10: the machine stays usable)
#
# Each target starts from its seeds (the files tests/fuzz/CMakeLists.txt lists, from the test
# vectors in the repo) and its regression inputs (tests/fuzz/regressions/<target>/), and keeps
# the corpus it grows in FUZZ_BUILD_DIR/fuzz/<target>/corpus for the next run.  A crash is
# written to FUZZ_BUILD_DIR/fuzz/<target>/crashes/: fix it, then commit the input under
# tests/fuzz/regressions/<target>/, where `make test` replays it.
set -u

SRC=$(cd "$(dirname "$0")/.." && pwd)
B=${FUZZ_BUILD_DIR:-$SRC/build-fuzz}
RUNS=${FUZZ_RUNS:-10000000}
TIME=${FUZZ_TIME:-0}
NICE=${FUZZ_NICE:-10}
JOBS=${JOBS:-2}
ALL="device_body operator_json http_response plist_scan scep_pkiop mdm_signature proxy_header
apns_response api_body session_cookie"
TARGETS=${FUZZ_TARGETS:-$ALL}

case "$RUNS$TIME" in *[!0-9]*)
    echo "fuzz.sh: FUZZ_RUNS and FUZZ_TIME must be whole numbers" >&2
    exit 2 ;;
esac

echo "== configure $B (clang, libFuzzer, ASan + UBSan)"
CC=${FUZZ_CC:-clang} cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-O1 -g" \
    -DSCEPTER_FUZZ=ON -DSCEPTER_SANITIZE=ON -DSCEPTER_TESTS=ON >"$B.configure.log" 2>&1 || {
    cat "$B.configure.log"
    exit 2
}
rm -f "$B.configure.log"
echo "== build"
bins=""
for t in $TARGETS; do bins="$bins fuzz_$t"; done
mkdir -p "$B/fuzz"
# shellcheck disable=SC2086
cmake --build "$B" -j "$JOBS" --target $bins >"$B/fuzz/build.log" 2>&1 || {
    tail -n 40 "$B/fuzz/build.log"
    exit 2
}

report=$B/fuzz/report.txt
: >"$report"
status=0
for t in $TARGETS; do
    d=$B/fuzz/$t
    bin=$B/tests/fuzz/fuzz_$t
    mkdir -p "$d/corpus" "$d/crashes"
    rm -rf "$d/seeds"
    mkdir -p "$d/seeds"
    while IFS= read -r f; do
        [ -n "$f" ] && cp "$f" "$d/seeds/"
    done <"$B/tests/fuzz/fuzz_$t.seeds"
    if [ -d "$SRC/tests/fuzz/regressions/$t" ]; then
        cp "$SRC/tests/fuzz/regressions/$t/"* "$d/seeds/" 2>/dev/null
    fi
    # crash-, leak-, timeout- and oom- files are failures; slow-unit- files (an input that took
    # over 10 s, which on a loaded machine is the machine) are only counted.
    before=$(ls "$d/crashes" | grep -cv '^slow-unit-')
    slow_before=$(ls "$d/crashes" | grep -c '^slow-unit-')
    limit=""
    [ "$TIME" -gt 0 ] && limit=", at most ${TIME}s"
    echo "== fuzz_$t: $RUNS runs$limit (log: $d/log)"
    start=$(date +%s)
    # -timeout: one input taking longer is a hang; -rss_limit_mb: a memory blow-up is a crash.
    nice -n "$NICE" "$bin" -runs="$RUNS" -max_total_time="$TIME" -timeout=25 \
        -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$d/crashes/" \
        "$d/corpus" "$d/seeds" >"$d/log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$d/log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$d/log" | tail -n 1)
    cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
    crashes=$(($(ls "$d/crashes" | grep -cv '^slow-unit-') - before))
    slow=$(($(ls "$d/crashes" | grep -c '^slow-unit-') - slow_before))
    line=$(printf '%-22s execs %-10s exec/s %-6s cov %-5s ft %-6s corpus %-12s %5ss  crashes %s  slow %s' \
        "fuzz_$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$secs" "$crashes" "$slow")
    echo "$line" | tee -a "$report"
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        status=1
        grep -E 'ERROR: |SUMMARY: |^artifact_prefix|Test unit written' "$d/log" | head -n 5
    fi
done
echo "== summary ($report)"
cat "$report"
[ $status -eq 0 ] && echo "fuzz: no crash" || echo "fuzz: crashes: see the logs above"
exit $status
