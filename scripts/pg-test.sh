#!/bin/sh
# A throwaway PostgreSQL for the test suite.
#   scripts/pg-test.sh start DIR   initdb DIR/data, start on a unix socket, write DIR/pg.url
#   scripts/pg-test.sh stop DIR    stop it and remove DIR
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user.
set -eu
cmd=${1:?usage: pg-test.sh start|stop DIR}
dir=${2:?usage: pg-test.sh start|stop DIR}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    if [ -f "$dir/pg.url" ] && [ -f "$dir/data/postmaster.pid" ]; then
        echo "pg-test: already running: $(cat "$dir/pg.url")"
        exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    # Unix socket paths are limited to ~100 bytes: keep the socket in a short /tmp dir.
    sock=$(mktemp -d /tmp/scepter-pg.XXXXXX)
    chmod 755 "$dir" "$sock"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$dir" "$sock"
    fi
    echo "$sock" > "$dir/socket-dir" 2>/dev/null || as_pg sh -c "echo '$sock' > '$dir/socket-dir'"
    as_pg "$PGBIN/initdb" -D "$dir/data" -U scepter -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log"; exit 1; }
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$sock' -c fsync=on -c max_connections=200 -c shared_buffers=256MB ${PG_TEST_OPTS:-}" \
        start >/dev/null || { cat "$dir/server.log"; exit 1; }
    as_pg "$PGBIN/createdb" -h "$sock" -U scepter scepter_test
    url="postgres:///scepter_test?host=$sock&user=scepter"
    echo "$url" > "$dir/pg.url" 2>/dev/null || as_pg sh -c "echo '$url' > '$dir/pg.url'"
    echo "pg-test: started $url"
    ;;
stop)
    if [ -d "$dir/data" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ -f "$dir/socket-dir" ]; then
        rm -rf "$(cat "$dir/socket-dir")"
    fi
    rm -rf "$dir"
    echo "pg-test: stopped"
    ;;
*)
    echo "usage: pg-test.sh start|stop DIR" >&2
    exit 2
    ;;
esac
