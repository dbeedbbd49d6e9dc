#!/bin/sh
# The one build recipe of the Docker image, which `make test` builds and runs
# (tests/container/), so the Dockerfile cannot silently rot:
#   docker/build.sh PREFIX [BUILD_DIR]
# installs the build packages (scripts/deps.sh docker-build), builds scepter and scepterctl in
# release mode and installs them under PREFIX/bin.
set -eu
prefix=${1:?usage: docker/build.sh PREFIX [BUILD_DIR]}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$src/build-docker}
"$src/scripts/deps.sh" docker-build
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSCEPTER_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target scepter scepterctl
cmake --install "$build" --component scepter >/dev/null
echo "docker/build.sh: installed $(ls "$prefix/bin" | tr '\n' ' ')into $prefix/bin"
