#!/bin/sh
# No Docker engine runs on these machines, so `make test` exercises the image's build steps
# another way: the Dockerfile's stages call docker/build.sh and scripts/deps.sh, and this
# test runs exactly those, then checks what the runtime stage relies on.
#   tests/docker/test_docker.sh WORK_DIR
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:?usage: test_docker.sh WORK_DIR}
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. Every path the Dockerfile copies from the build context exists.
grep -E '^COPY ' "$src/docker/Dockerfile" | grep -v -- '--from=' | while read -r _ from _to; do
    [ -e "$src/$from" ] || fail "Dockerfile copies $from, which does not exist"
done
grep -q 'docker/build.sh' "$src/docker/Dockerfile" || fail "the build stage must use docker/build.sh"
grep -q 'deps.sh docker-runtime' "$src/docker/Dockerfile" || fail "the runtime stage must use deps.sh"
grep -q 'HEALTHCHECK' "$src/docker/Dockerfile" || fail "no HEALTHCHECK"
grep -q '^USER scepter' "$src/docker/Dockerfile" || fail "the image must not run as root"

# 2. The build stage's recipe builds and installs both binaries.
"$src/docker/build.sh" "$work/prefix" "$work/build" >"$work/build.log" 2>&1 || {
    cat "$work/build.log"; fail "docker/build.sh failed"; }
for b in scepter scepterctl; do
    [ -x "$work/prefix/bin/$b" ] || fail "$b was not installed"
done
"$work/prefix/bin/scepter" --help >/dev/null || fail "scepter --help"
"$work/prefix/bin/scepter" config --example | grep -q '^listen = ' || fail "scepter config"
"$work/prefix/bin/scepterctl" --help >/dev/null 2>&1 || true

# 3. Every shared library the binaries link directly comes from a package the runtime stage
#    installs (or from libc6, which debian:12-slim has).
runtime="$("$src/scripts/deps.sh" list-runtime) libc6"
arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
for b in scepter scepterctl; do
    for lib in $(readelf -d "$work/prefix/bin/$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        pkg=$(dpkg -S "*/$lib" 2>/dev/null | grep -E ": .*/$arch/$lib\$" | head -n1 | cut -d: -f1)
        [ -n "$pkg" ] || fail "$b needs $lib, which no installed package provides"
        case " $runtime " in
        *" $pkg "*) ;;
        *) fail "$b needs $lib from package '$pkg', missing from deps.sh's runtime list" ;;
        esac
    done
done
echo "docker build steps: ok ($(ls "$work/prefix/bin" | tr '\n' ' '))"
rm -rf "$work/build"
