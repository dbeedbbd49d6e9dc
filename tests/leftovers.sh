#!/bin/sh
# ctest fixture "leftovers": nothing the suite starts outlives it.
#   tests/leftovers.sh setup DIR TAG   record the start marker (DIR/marker)
#   tests/leftovers.sh check DIR TAG   runs last; fails listing
#     - every process still alive that the suite started: scepter, scepserver, scepter-sim,
#       apns-test-server, postgres (and any other) whose environment carries
#       SCEPTER_TEST_TAG=TAG, or a postgres serving a /tmp/scepter-pgtest.TAG.* cluster;
#     - every /tmp/scepter-test.TAG.* and /tmp/scepter-pgtest.TAG.* directory newer than the
#       marker.
# TAG names the build tree (cmake/Scepter.cmake), so another build's concurrent run is not
# mistaken for ours.
set -eu
cmd=${1:?usage: leftovers.sh setup|check DIR TAG}
dir=${2:?usage: leftovers.sh setup|check DIR TAG}
tag=${3:?usage: leftovers.sh setup|check DIR TAG}

case "$cmd" in
setup)
    mkdir -p "$dir"
    : >"$dir/marker"
    echo "leftovers: marker $dir/marker"
    exit 0
    ;;
check) ;;
*)
    echo "usage: leftovers.sh setup|check DIR TAG" >&2
    exit 2
    ;;
esac

[ -f "$dir/marker" ] || {
    echo "leftovers: no marker $dir/marker (leftovers_setup did not run)" >&2
    exit 1
}
bad=0
self=$$
# Processes: the environment (as exec'd) or the command line names this suite.  Our own
# ancestors (ctest, the shell running this) are excluded.
ancestors=" "
p=$self
i=0
while [ "$p" -gt 1 ] && [ $i -lt 64 ]; do
    ancestors="$ancestors$p "
    p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 1)
    i=$((i + 1))
done
for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    case "$ancestors" in *" $pid "*) continue ;; esac
    cmdline=$({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null || true)
    [ -n "$cmdline" ] || continue
    # The suite's programs (not the shell tools this script itself runs).
    argv0=${cmdline%% *}
    case "${argv0##*/}" in
    scepter | scepterctl | scepserver | scepter-sim | apns-test-server | postgres | pg_ctl) ;;
    test_* | bench_* | fuzz_* | boxfort-worker) ;;
    *) continue ;;
    esac
    ours=0
    if { tr '\0' '\n' <"$d/environ"; } 2>/dev/null | grep -qx "SCEPTER_TEST_TAG=$tag"; then
        ours=1
    fi
    case "$cmdline" in
    *"/tmp/scepter-pgtest.$tag."* | *"/tmp/scepter-test.$tag."*) ours=1 ;;
    esac
    [ $ours -eq 1 ] || continue
    # This script's own pipeline children share its environment.
    ppid=$(awk '/^PPid:/ {print $2}' "$d/status" 2>/dev/null || echo 0)
    [ "$ppid" = "$self" ] && continue
    echo "leftovers: process $pid still running (parent $ppid): $cmdline"
    bad=1
done
for t in /tmp/scepter-test."$tag".* /tmp/scepter-pgtest."$tag".*; do
    [ -e "$t" ] || continue
    if [ -n "$(find "$t" -maxdepth 0 -newer "$dir/marker" 2>/dev/null)" ]; then
        echo "leftovers: temporary directory left behind: $t"
        bad=1
    fi
done
if [ $bad -ne 0 ]; then
    echo "leftovers: the suite left the above behind (see the tests that started them)"
    exit 1
fi
echo "leftovers: nothing left behind"
