#!/bin/sh
# A throwaway PostgreSQL for the test suite.
#   scripts/pg-test.sh start DIR   make a cluster in a fresh /tmp/scepter-pgtest.* directory,
#                                  start it on a unix socket there, write DIR/pg.url and
#                                  DIR/cluster (the cluster's directory)
#   scripts/pg-test.sh stop DIR    stop the cluster named in DIR/cluster, remove it and DIR
# DIR (in the build tree) is only written by the user running this script.  The cluster lives
# under /tmp, not in DIR: as root, PostgreSQL runs as the `postgres` user, which cannot reach a
# build tree inside a private home directory (root's is 0700).
# SCEPTER_TEST_TAG (set by ctest) is put in the cluster directory's name so a suite's leftovers
# check recognises its own clusters.
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

stop_cluster() { # $1: cluster directory
    [ -n "$1" ] || return 0
    case "$1" in
    /tmp/scepter-pgtest.*) ;;
    *)
        echo "pg-test: refusing to remove '$1' (not a /tmp/scepter-pgtest.* directory)" >&2
        return 1
        ;;
    esac
    if [ -f "$1/data/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$1/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            as_pg "$PGBIN/pg_ctl" -D "$1/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$1"
}

case "$cmd" in
start)
    if [ -f "$dir/pg.url" ] && [ -f "$dir/cluster" ] &&
        [ -f "$(cat "$dir/cluster")/data/postmaster.pid" ]; then
        echo "pg-test: already running: $(cat "$dir/pg.url")"
        exit 0
    fi
    # A cluster of an earlier, interrupted run.
    if [ -f "$dir/cluster" ]; then
        stop_cluster "$(cat "$dir/cluster")"
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    tag=${SCEPTER_TEST_TAG:+$SCEPTER_TEST_TAG.}
    cl=$(mktemp -d "/tmp/scepter-pgtest.${tag}XXXXXX")
    echo "$cl" >"$dir/cluster"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$cl"
    fi
    # Clients of other users (a test running as root, the cluster as postgres) reach the socket.
    chmod 711 "$cl"
    # The socket sits in the cluster directory: a short path (unix sockets allow ~100 bytes).
    as_pg "$PGBIN/initdb" -D "$cl/data" -U scepter -A trust -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log"
        stop_cluster "$cl"
        exit 1
    }
    as_pg "$PGBIN/pg_ctl" -D "$cl/data" -l "$cl/server.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$cl' -c unix_socket_permissions=0777 -c fsync=on -c max_connections=200 -c shared_buffers=256MB ${PG_TEST_OPTS:-}" \
        start >/dev/null || {
        as_pg cat "$cl/server.log" || true
        stop_cluster "$cl"
        exit 1
    }
    as_pg "$PGBIN/createdb" -h "$cl" -U scepter scepter_test
    url="postgres:///scepter_test?host=$cl&user=scepter"
    echo "$url" >"$dir/pg.url"
    echo "pg-test: started $url"
    ;;
stop)
    if [ -f "$dir/cluster" ]; then
        stop_cluster "$(cat "$dir/cluster")"
    fi
    rm -rf "$dir"
    echo "pg-test: stopped"
    ;;
*)
    echo "usage: pg-test.sh start|stop DIR" >&2
    exit 2
    ;;
esac
