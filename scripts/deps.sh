#!/bin/sh
# Install the Debian packages a make target needs, when they are missing.
#   scripts/deps.sh build|run|test|bench|soak|fuzz|docker-build|docker-runtime
# Prints what it does.  Needs root (or sudo) only when something is missing.
set -eu

BUILD="build-essential cmake pkg-config libevent-dev libssl-dev libplist-dev libjansson-dev
libinih-dev libsqlite3-dev libpq-dev libnghttp2-dev libsodium-dev"
RUN="$BUILD openssl"
TEST="$RUN libcriterion-dev postgresql-15 postgresql-client-15 scep nodejs ca-certificates
python3 python3-yaml clang-format clang-tidy git"
# certmonger (its daemon and scep-submit) is a SCEP client of the built-in CA's tests.
TEST="$TEST certmonger dbus-daemon"
# The web console's browser test: Debian's chromium driven by playwright-core from npm
# (tests/console/run.sh runs `npm ci`); npm comes with nodejs when that is NodeSource's.
TEST="$TEST chromium"
command -v npm >/dev/null 2>&1 || TEST="$TEST npm"
BENCH="$TEST curl jq"
# make soak: the bench's tools and gnuplot (no X) for the PNG plot of the samples.
SOAK="$BENCH gnuplot-nox"
# make fuzz: clang with libFuzzer and the sanitizer runtimes (the fuzz build configures the tests).
FUZZ="$BUILD libcriterion-dev clang libclang-rt-14-dev"
# The shared libraries the runtime image needs (docker/Dockerfile uses this list).
RUNTIME="libevent-2.1-7 libevent-core-2.1-7 libevent-extra-2.1-7 libevent-openssl-2.1-7
libevent-pthreads-2.1-7
libssl3 libplist3
libjansson4 libinih1 libsqlite3-0 libpq5 libnghttp2-14 libsodium23 ca-certificates openssl"

case "${1:-}" in
build) want=$BUILD ;;
run) want=$RUN ;;
test) want=$TEST ;;
bench) want=$BENCH ;;
soak) want=$SOAK ;;
fuzz) want=$FUZZ ;;
docker-build) want=$BUILD ;;
docker-runtime) want=$RUNTIME ;;
list-runtime) echo $RUNTIME; exit 0 ;;
list-build) echo $BUILD; exit 0 ;;
*) echo "usage: $0 build|run|test|bench|soak|fuzz|docker-build|docker-runtime" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "deps: every package for '$1' is installed"
    exit 0
fi
echo "deps: installing for '$1':$missing"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "deps: missing packages and not root; run as root: apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# shellcheck disable=SC2086
$SUDO apt-get install -y --no-install-recommends $missing
