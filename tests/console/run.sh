#!/bin/sh
# The console's browser test (started by test_console.c with the servers' addresses in the
# environment): install playwright-core from the npm registry with `npm ci` — exactly the
# versions of package-lock.json, no browser download — into $CONSOLE_NODE_DIR (in the build
# tree) when that copy is missing or stale, then run $CONSOLE_SCRIPT (default run.mjs) with node.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${CONSOLE_NODE_DIR:?CONSOLE_NODE_DIR is not set (test_console sets it)}
command -v node >/dev/null || { echo "console: node is missing (scripts/deps.sh test)" >&2; exit 1; }
command -v npm >/dev/null || { echo "console: npm is missing (scripts/deps.sh test)" >&2; exit 1; }
mkdir -p "$dir"
if ! cmp -s "$here/package-lock.json" "$dir/package-lock.json" ||
    [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    echo "console: npm ci in $dir"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm ci --no-audit --no-fund \
        --ignore-scripts)
fi
exec node "$here/${CONSOLE_SCRIPT:-run.mjs}"
