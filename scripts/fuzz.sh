#!/bin/sh
# scripts/fuzz.sh — coverage-guided fuzzing of every parser of untrusted input (`make fuzz`).
#
# Builds the targets of tests/fuzz/ with clang against libFuzzer, under ASan and UBSan, in
# FUZZ_BUILD_DIR (build-fuzz), then runs every target for FUZZ_RUNS executions (10,000,000),
# JOBS targets at a time (2), and prints, per target: executions, executions/s, coverage
# (libFuzzer's cov: edges and ft: features), corpus size, time, and the crashes found, then
# the totals.  Exit status 1 when any target crashed, leaked or timed out.
#
#   FUZZ_RUNS     executions per target (10000000)
#   FUZZ_TIME     also stop each target after this many seconds (0: no limit)
#   FUZZ_TARGETS  the targets to run (default: every tests/fuzz/fuzz_<name>.c that defines
#                 LLVMFuzzerTestOneInput, the fast ones first)
#   FUZZ_NICE     nice level of the fuzzers (10: the machine stays usable)
#   JOBS          targets fuzzed at the same time (2), each in its own process; a target
#                 still runs to FUZZ_RUNS in one process
#
#   scripts/fuzz.sh report   prints the table again from the logs of the last runs
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

# Every target, the fast ones first (executions per CPU second, highest first), so that with
# FUZZ_TIME or an interrupted run the most executions are done; a target missing here (a new
# one) is appended, so the default list is always every target of tests/fuzz/.
ORDER="ddm_status plist_scan http_response session_cookie apns_response operator_json api_body
device_body mdm_signature proxy_header scep_pkiop"
all_targets() {
    found=$(grep -l '^int LLVMFuzzerTestOneInput(.*)$' "$SRC"/tests/fuzz/fuzz_*.c |
        sed 's|.*/fuzz_\(.*\)\.c$|\1|' | sort)
    list=""
    for t in $ORDER; do
        case " $(echo "$found" | tr '\n' ' ') " in *" $t "*) list="$list $t" ;; esac
    done
    for t in $found; do
        case " $list " in *" $t "*) ;; *) list="$list $t" ;; esac
    done
    echo "${list# }"
}
TARGETS=${FUZZ_TARGETS:-$(all_targets)}

case "$RUNS$TIME$JOBS" in *[!0-9]*)
    echo "fuzz.sh: FUZZ_RUNS, FUZZ_TIME and JOBS must be whole numbers" >&2
    exit 2 ;;
esac
[ "$JOBS" -ge 1 ] || JOBS=1

# How many files of crash directory $1 are failures (crash-, leak-, timeout-, oom-), or with
# $2 = slow, slow units.
count() {
    n=0
    for f in "$1"/*; do
        [ -e "$f" ] || continue
        case "${f##*/}" in slow-unit-*) [ "${2:-}" = slow ] && n=$((n + 1)) ;;
        *) [ "${2:-}" = slow ] || n=$((n + 1)) ;;
        esac
    done
    echo $n
}

# The report line of target $1, from its log and crash directory ($2: crashes before the run,
# $3: slow units before, $4: seconds).
report_line() {
    t=$1
    d=$B/fuzz/$t
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$d/log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$d/log" | tail -n 1)
    [ -n "$execs" ] || execs=$(printf '%s\n' "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
    cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
    crashes=$(($(count "$d/crashes") - $2))
    slow=$(($(count "$d/crashes" slow) - $3))
    secs=$4
    [ -n "$secs" ] || secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$d/log")
    printf '%-22s execs %-10s exec/s %-6s cov %-5s ft %-6s corpus %-12s %6ss  crashes %s  slow %s\n' \
        "fuzz_$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${secs:-?}" "$crashes" \
        "$slow"
}

# The table of the targets' last runs (their report.line files) and the totals.
summary() {
    total_execs=0 total_secs=0 total_crashes=0 n=0
    for t in $TARGETS; do
        f=$B/fuzz/$t/report.line
        if [ ! -f "$f" ] && [ -f "$B/fuzz/$t/log" ]; then
            # a run this script did not finish (interrupted, or started by hand): from its log
            report_line "$t" 0 0 "" >"$B/fuzz/$t/report.partial"
            f=$B/fuzz/$t/report.partial
        fi
        if [ ! -f "$f" ]; then
            printf '%-22s not run\n' "fuzz_$t"
            continue
        fi
        cat "$f"
        # shellcheck disable=SC2046
        set -- $(sed 's/.* execs \([0-9?]*\) .* \([0-9?]*\)s  crashes \([0-9]*\) .*/\1 \2 \3/' "$f")
        case "$1" in *[!0-9]*) ;; *) total_execs=$((total_execs + $1)) ;; esac
        case "$2" in *[!0-9]*) ;; *) total_secs=$((total_secs + $2)) ;; esac
        total_crashes=$((total_crashes + $3))
        n=$((n + 1))
    done
    printf '%-22s execs %-10s %d targets, %ss of fuzzing, crashes %s\n' "total" "$total_execs" \
        "$n" "$total_secs" "$total_crashes"
}

if [ "${1:-}" = report ]; then
    summary
    exit 0
fi

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

# One target, to FUZZ_RUNS executions: writes $d/report.line; status 1 on a crash.
run_target() {
    t=$1
    d=$B/fuzz/$t
    bin=$B/tests/fuzz/fuzz_$t
    mkdir -p "$d"
    # One fuzzer per corpus: another run of this script (or a lane of it) holding the target's
    # lock is left alone; a lock whose process is gone is taken over.
    if ! mkdir "$d/lock" 2>/dev/null; then
        holder=$(cat "$d/lock/pid" 2>/dev/null)
        if [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null; then
            echo "== fuzz_$t: already being fuzzed (process $holder), skipped"
            return 0
        fi
    fi
    echo $$ >"$d/lock/pid"
    mkdir -p "$d/corpus" "$d/crashes"
    rm -rf "$d/seeds" "$d/report.line"
    mkdir -p "$d/seeds"
    while IFS= read -r f; do
        [ -n "$f" ] && cp "$f" "$d/seeds/"
    done <"$B/tests/fuzz/fuzz_$t.seeds"
    if [ -d "$SRC/tests/fuzz/regressions/$t" ]; then
        cp "$SRC/tests/fuzz/regressions/$t/"* "$d/seeds/" 2>/dev/null
    fi
    # crash-, leak-, timeout- and oom- files are failures; slow-unit- files (an input that took
    # over 10 s, which on a loaded machine is the machine) are only counted.
    before=$(count "$d/crashes")
    slow_before=$(count "$d/crashes" slow)
    limit=""
    [ "$TIME" -gt 0 ] && limit=", at most ${TIME}s"
    echo "== fuzz_$t: $RUNS runs$limit (log: $d/log)"
    start=$(date +%s)
    # -timeout: one input taking longer is a hang; -rss_limit_mb: a memory blow-up is a crash.
    nice -n "$NICE" "$bin" -runs="$RUNS" -max_total_time="$TIME" -timeout=25 \
        -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$d/crashes/" \
        "$d/corpus" "$d/seeds" >"$d/log" 2>&1
    rc=$?
    line=$(report_line "$t" "$before" "$slow_before" $(($(date +%s) - start)))
    echo "$line" >"$d/report.line"
    echo "$line"
    crashes=$(($(count "$d/crashes") - before))
    rm -rf "$d/lock"
    # 72: libFuzzer stopped by SIGINT (kill -INT of the fuzzer ends a target early, with its
    # figures): not a finding.
    if [ "$rc" -eq 72 ] && [ "$crashes" -eq 0 ]; then
        n=$(echo "$line" | sed -n 's/.* execs \([0-9?]*\) .*/\1/p')
        echo "== fuzz_$t: interrupted after $n executions"
        return 0
    fi
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        grep -E 'ERROR: |SUMMARY: |^artifact_prefix|Test unit written' "$d/log" | head -n 5
        return 1
    fi
    return 0
}

# JOBS lanes take the targets in order from a shared queue: a lane claims a target by making
# its directory under $queue (mkdir is atomic), so a lane that finishes early takes the next.
queue=$B/fuzz/.queue.$$
rm -rf "$queue"
mkdir -p "$queue"
trap 'rm -rf "$queue"' EXIT
trap 'exit 130' INT TERM
lane() {
    failed=0
    for t in $TARGETS; do
        mkdir "$queue/$t" 2>/dev/null || continue
        run_target "$t" || failed=1
    done
    [ $failed -eq 0 ] && touch "$queue/lane$1.ok"
}
echo "== $(echo "$TARGETS" | wc -w) targets, $JOBS at a time, $RUNS runs each, nice $NICE," \
    "commit $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')"
pids=""
i=1
while [ $i -le "$JOBS" ]; do
    lane $i &
    pids="$pids $!"
    i=$((i + 1))
done
# shellcheck disable=SC2086
wait $pids
status=0
i=1
while [ $i -le "$JOBS" ]; do
    [ -f "$queue/lane$i.ok" ] || status=1
    i=$((i + 1))
done
report=$B/fuzz/report.txt
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), commit" \
        "$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?'), $JOBS at a time," \
        "nice $NICE, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
    summary
} >"$report"
echo "== summary ($report)"
cat "$report"
[ $status -eq 0 ] && echo "fuzz: no crash" || echo "fuzz: crashes: see the logs above"
exit $status
