#!/bin/sh
# make run: start scepter on the embedded SQLite store with development certificates.
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
if [ ! -x "$build/mdm/scepter" ]; then
    echo "run-dev: $build/mdm/scepter is missing; run make build" >&2
    exit 1
fi
echo "run-dev: the server is not built yet; showing its configuration"
exec "$build/mdm/scepter" config
