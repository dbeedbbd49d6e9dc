#!/bin/bash
# tests/container/test_container.sh SRC_DIR BUILD_DIR — the Docker image, run in a real engine.
#
# Needs podman set up by scripts/container-engine.sh (the ctest fixture container_engine) and
# the test build's simulator and APNs test server.  Against the image built from
# docker/Dockerfile it:
#   1. reports the image's size and checks it has no compiler and no -dev package, runs as a
#      non-root user and declares a HEALTHCHECK;
#   2. runs it with SQLite on a named volume, published on 127.0.0.1 only, secrets from files;
#      waits for the HEALTHCHECK to say healthy; checks the server runs as the non-root user;
#      simulated devices (scepter-sim on the host, through the published port) enroll with an
#      enrollment token and get their identity by real SCEP (Debian's scepserver on the host);
#      a SCEP policy's InstallProfile is pushed (APNs test server) and acknowledged;
#   3. restarts the container: devices, the policy and a queued command are still there, and
#      the command is delivered after a push;
#   4. stops it (podman stop): exit status 0 within the drain timeout (request_timeout);
#   5. brings up docker/docker-compose.yml with tests/container/compose.override.yml (which
#      only swaps postgres:15 for the local stand-in): PostgreSQL health-gated, secrets from
#      files, migrations at start; the same device flow, enrolling with ?secret=.
# Everything the host side talks to is on 127.0.0.1.  Scepter reaches the APNs test server
# through a relay: a socat listening on 127.0.0.1:2197 inside the container's network
# namespace (nsenter), joined by a UNIX socket to one connecting to the server on the host's
# 127.0.0.1.  podman runs no health-check timers without systemd, so the test runs the
# image's HEALTHCHECK with `podman healthcheck run`; podman-compose 1.0.3 ignores
# `condition: service_healthy`, so the test starts db, waits for it to be healthy, then
# starts scepter, which is what the condition says.  Every wait is bounded; containers,
# volumes, networks, processes and the temporary directory are removed at exit.
set -euo pipefail
{

# Rootful podman (scripts/container-engine.sh): an ordinary user with sudo runs this through
# sudo; everything it creates lives in a temporary directory it removes.
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        exec sudo -n --preserve-env=SCEPTER_TEST_IMAGE,SCEPTER_MAX_IMAGE_MB,SCEPTER_TEST_TAG \
            "$0" "$@"
    fi
    echo "container: needs root or passwordless sudo (rootful podman)" >&2
    exit 1
fi

SRC=$(cd "${1:?usage: test_container.sh SRC_DIR BUILD_DIR}" && pwd)
B=$(cd "${2:?usage: test_container.sh SRC_DIR BUILD_DIR}" && pwd)
IMAGE=${SCEPTER_TEST_IMAGE:-localhost/scepter:ctest}
DRAIN_S=30 # request_timeout's default: how long a stop may take
MAX_IMAGE_MB=${SCEPTER_MAX_IMAGE_MB:-130}
N=4 # simulated devices per flow: 2 Macs, 2 iPhones
TAG=$$
NAME=scepter-ct-$TAG
VOL=scepter-ct-$TAG
PROJECT=scepterct$TAG
WORK=$(mktemp -d /tmp/scepter-ct.XXXXXX)
chmod 755 "$WORK"
PIDS=""
RELAY_PID=""
COMPOSE_UP=""
START=$(date +%s)

say() { echo "container [$(($(date +%s) - START))s] $*"; }
die() {
    echo "container: FAIL: $*" >&2
    for c in "$NAME" "${PROJECT}_scepter_1" "${PROJECT}_db_1"; do
        if podman container exists "$c" 2>/dev/null; then
            echo "--- podman logs $c (last 30 lines)" >&2
            podman logs "$c" 2>&1 | tail -n 30 >&2 || true
        fi
    done
    exit 1
}
cleanup() {
    set +e
    [ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    podman rm -f -t 0 "$NAME" >/dev/null 2>&1
    podman volume rm -f "$VOL" >/dev/null 2>&1
    if [ -n "$COMPOSE_UP" ]; then
        # -v: the image's VOLUME, anonymous under compose, goes with its container.
        podman rm -f -v -t 0 "${PROJECT}_scepter_1" "${PROJECT}_db_1" >/dev/null 2>&1
        compose down -v -t 0 >/dev/null 2>&1
        podman pod rm -f "pod_$PROJECT" >/dev/null 2>&1
        podman volume rm -f "${PROJECT}_pgdata" >/dev/null 2>&1
        podman network rm -f "${PROJECT}_default" >/dev/null 2>&1
    fi
    sleep 0.2
    for p in $PIDS $RELAY_PID; do kill -9 "$p" 2>/dev/null; done
    [ -n "${SCEPTER_TEST_KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for t in podman curl jq openssl scepserver socat nsenter; do
    command -v $t >/dev/null || die "$t is missing (scripts/container-engine.sh installs it)"
done
for f in "$B/tests/sim/scepter-sim" "$B/tests/apns-server/apns-test-server"; do
    [ -x "$f" ] || die "$f is missing: build the test tree first"
done

# Ports are drawn below the kernel's ephemeral range (ip_local_port_range), where nothing that
# binds port 0 or connects out (other tests running beside this one) is handed one; a port seen
# free can still be taken before podman binds it, so `podman run` retries on "address in use".
EPH_LO=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPH_LO" -gt 12000 ] 2>/dev/null || EPH_LO=32768
free_port() { # a loopback port nobody listens on (bounded tries)
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        p=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % (EPH_LO - 10000)))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo $p; return 0; fi
    done 2>/dev/null
    die "no free port"
}
wait_file() { # FILE SECONDS WHAT
    for _ in $(seq 1 $(($2 * 10))); do [ -s "$1" ] && return 0; sleep 0.1; done
    die "$3 did not appear within $2 s"
}

# --- 1. the image ------------------------------------------------------------------------------
T0=$(date +%s)
# The build stage is tagged too, so that it stays in the layer cache while the build stages
# of earlier runs (untagged, labelled org.scepter.stage=build) are pruned.
for target in build ""; do
    if [ -n "$target" ]; then tag=$IMAGE-build; else tag=$IMAGE; fi
    old=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    podman build --format docker ${target:+--target "$target"} -f "$SRC/docker/Dockerfile" \
        -t "$tag" "$SRC" >"$WORK/build.log" 2>&1 || {
        tail -n 40 "$WORK/build.log" >&2
        die "podman build failed"
    }
    # The previous run's image, now untagged, goes (it fails harmlessly while in use).
    [ -z "$old" ] || [ "$old" = "$(podman image inspect --format '{{.Id}}' "$tag")" ] ||
        podman rmi "$old" >/dev/null 2>&1 || true
done
podman image prune -f --filter label=org.scepter.stage=build >/dev/null 2>&1 || true
BUILD_S=$(($(date +%s) - T0))
SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
SIZE_MB=$((SIZE / 1000000))
say "image $IMAGE built in $BUILD_S s; size $SIZE_MB MB"
echo "image size: $SIZE_MB MB ($SIZE bytes)"
[ "$SIZE_MB" -le "$MAX_IMAGE_MB" ] || die "the image is $SIZE_MB MB, over $MAX_IMAGE_MB MB"
[ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = scepter ] ||
    die "the image's USER is not scepter"
podman image inspect --format '{{json .HealthCheck}}' "$IMAGE" >"$WORK/health.json"
grep -q 'scepter' "$WORK/health.json" ||
    die "the image has no HEALTHCHECK (built without --format docker?)"
podman run --rm --entrypoint sh "$IMAGE" -c '
    for c in cc gcc clang make cmake ld; do
        command -v $c >/dev/null && { echo "compiler or build tool in the runtime image: $c"; exit 1; }
    done
    dev=$(dpkg-query -W -f "\${Package}\n" | grep -- "-dev$" || true)
    [ -z "$dev" ] || { echo "-dev packages in the runtime image: $dev"; exit 1; }
    /usr/local/bin/scepter --help >/dev/null' >"$WORK/image-check.log" 2>&1 ||
    die "runtime image: $(cat "$WORK/image-check.log")"
say "runtime image: no compiler, no -dev package, USER scepter, HEALTHCHECK"

# --- the world around the server: PKI, the devices' CA, APNs, the relay -------------------------
PKI=$WORK/pki
sh "$SRC/tests/apns-server/make-test-pki.sh" "$PKI" >/dev/null
scepserver ca -init -depot "$WORK/depot" -keySize 2048 >/dev/null 2>&1 || die "scepserver ca -init failed"
SCEP_PORT=$(free_port)
SCEP_SECRET=ct-scep-$(openssl rand -hex 8)
scepserver -depot "$WORK/depot" -port "$SCEP_PORT" -challenge "$SCEP_SECRET" >"$WORK/scepserver.log" 2>&1 &
PIDS="$PIDS $!"
for i in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$SCEP_PORT/scep?operation=GetCACaps" >/dev/null 2>&1 && break
    [ "$i" -lt 150 ] || die "scepserver did not answer within 15 s"
    sleep 0.1
done
SCEP_URL=http://127.0.0.1:$SCEP_PORT/scep
SCEP_FP=$(openssl x509 -in "$WORK/depot/ca.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')

"$B/tests/apns-server/apns-test-server" --cert "$PKI/server.pem" --key "$PKI/server.key" \
    --client-ca "$PKI/pushca.pem" --listen 127.0.0.1:0 --port-file "$WORK/apns.port" \
    --control 127.0.0.1:0 --control-port-file "$WORK/control.port" --max-lifetime 1800 \
    --quiet >"$WORK/apns.log" 2>&1 &
PIDS="$PIDS $!"
wait_file "$WORK/apns.port" 10 "the APNs test server's port"
wait_file "$WORK/control.port" 10 "the APNs test server's control port"
APNS_PORT=$(cat "$WORK/apns.port")
CONTROL=http://127.0.0.1:$(cat "$WORK/control.port")
# Host half of the relay: the UNIX socket to the APNs test server.
socat "UNIX-LISTEN:$WORK/apns.sock,fork,mode=600" "TCP:127.0.0.1:$APNS_PORT" 2>"$WORK/relay-host.log" &
PIDS="$PIDS $!"
wait_file_sock() { for _ in $(seq 1 50); do [ -S "$1" ] && return 0; sleep 0.1; done; die "relay socket"; }
wait_file_sock "$WORK/apns.sock"
# Container half: 127.0.0.1:2197 in CONTAINER's network namespace, one per start.
relay_into() {
    [ -n "$RELAY_PID" ] && { kill "$RELAY_PID" 2>/dev/null || true; wait "$RELAY_PID" 2>/dev/null || true; }
    local pid
    pid=$(podman inspect --format '{{.State.Pid}}' "$1")
    [ "$pid" -gt 0 ] || die "$1 has no process"
    nsenter --net="/proc/$pid/ns/net" socat TCP-LISTEN:2197,bind=127.0.0.1,reuseaddr,fork \
        "UNIX-CONNECT:$WORK/apns.sock" 2>"$WORK/relay-$1.log" &
    RELAY_PID=$!
}

# The secrets, as files (0644 in a directory only this test reads: the container's user is
# not the host's).  tls.pem is the chain leaf + private root; the root also verifies the APNs
# test server, whose certificate comes from the same CA.
SECRETS=$WORK/secrets
mkdir -m 755 "$SECRETS"
cat "$PKI/server.pem" "$PKI/ca.pem" >"$SECRETS/tls.pem"
cp "$PKI/server.key" "$SECRETS/tls.key"
cp "$WORK/depot/ca.pem" "$SECRETS/device-ca.pem"
cp "$PKI/push.pem" "$SECRETS/push.pem"
cp "$PKI/push.key" "$SECRETS/push.key"
printf '%s\n' "$SCEP_SECRET" >"$SECRETS/scep_challenge"
openssl rand -hex 24 >"$SECRETS/api_key"
openssl rand -hex 16 >"$SECRETS/enroll_secret"
openssl rand -hex 16 >"$SECRETS/db_password"
printf 'postgres://scepter:%s@db/scepter\n' "$(cat "$SECRETS/db_password")" >"$SECRETS/store_url"
chmod 644 "$SECRETS"/*
API_KEY=$(cat "$SECRETS/api_key")

URL=""
api() { # METHOD PATH [JSON] — prints the body, fails on a status other than 2xx
    local out code body=()
    out=$WORK/api.out
    [ $# -ge 3 ] && body=(-H 'Content-Type: application/json' --data-binary "$3")
    code=$(curl -sS --max-time 60 --cacert "$PKI/ca.pem" -H "Authorization: Bearer $API_KEY" \
        "${body[@]}" -X "$1" -o "$out" -w '%{http_code}' "$URL$2") || die "$1 $2: curl failed"
    case $code in 2??) cat "$out" ;; *) die "$1 $2: HTTP $code $(head -c 400 "$out")" ;; esac
}

wait_healthy() { # CONTAINER SECONDS — runs the image's HEALTHCHECK until it passes
    local st
    for i in $(seq 1 "$2"); do
        [ "$(podman inspect --format '{{.State.Status}}' "$1")" = running ] ||
            die "$1 is not running ($(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$1"))"
        st=$(podman healthcheck run "$1" 2>&1) && break
        [ "$i" -lt "$2" ] || die "$1 not healthy within $2 s: $st"
        sleep 1
    done
    st=$(podman inspect --format '{{.State.Healthcheck.Status}}' "$1")
    [ "$st" = healthy ] || die "$1: health status '$st'"
}

# A simulated fleet enrolls at ENROLL_URL; a macOS SCEP policy for its Macs is pushed and
# acknowledged.  Sets SIM_PID, MACS, POLICY.
device_flow() { # LABEL ENROLL_URL SEED
    local label=$1 state=$WORK/sim-$1.json ready=$WORK/sim-$1.ready
    "$B/tests/sim/scepter-sim" --server "$URL" --enroll-url "$2" --ca "$PKI/ca.pem" \
        --devices $N --platform-mix mac=50,iphone=50 --seed "$3" --concurrency 4 \
        --apns-control "$CONTROL" --duration 900 --state-file "$state" --ready-file "$ready" \
        --log-level warn >"$WORK/sim-$label.out" 2>"$WORK/sim-$label.log" &
    SIM_PID=$!
    PIDS="$PIDS $SIM_PID"
    for i in $(seq 1 1200); do
        [ -s "$ready" ] && break
        kill -0 "$SIM_PID" 2>/dev/null || die "$label: the simulator exited: $(tail -n 5 "$WORK/sim-$label.log")"
        [ "$i" -lt 1200 ] || die "$label: devices not enrolled within 120 s"
        sleep 0.1
    done
    [ "$(cat "$ready")" = "enrolled $N" ] || die "$label: simulator: $(cat "$ready"); $(tail -n 5 "$WORK/sim-$label.log")"
    [ "$(api GET '/v1/devices?enrolled=true' | jq .count)" = $N ] || die "$label: the API does not list $N enrolled devices"
    MACS=$(api GET '/v1/devices?enrolled=true&platform=macos' | jq -c '[.devices[].udid]')
    local nmacs
    nmacs=$(jq length <<<"$MACS")
    [ "$nmacs" -ge 1 ] || die "$label: no Mac among the devices"
    say "$label: $N devices enrolled through $URL (real SCEP), $nmacs Macs"
    local body reply
    body=$(jq -n --arg url "$SCEP_URL" --arg ch "$SCEP_SECRET" --arg fp "$SCEP_FP" --argjson d "$MACS" \
        --arg name "Container Wi-Fi $label" \
        '{name: $name, platform: "macos", notes: "container test",
          scep: {url: $url, name: "scepter-ct", challenge: $ch, fingerprint: $fp, key_size: 2048,
                 subject: "/O=Scepter container test/CN=%HardwareUUID%", retries: 1,
                 retry_delay: 0, key_usage: ["signing"]},
          targets: {devices: $d}}')
    reply=$(api POST /v1/policies "$body")
    POLICY=$(jq .id <<<"$reply")
    [ "$(jq .queued_installs <<<"$reply")" = "$nmacs" ] || die "$label: policy: $reply"
    local st
    for i in $(seq 1 480); do
        st=$(api GET "/v1/policies/$POLICY/status")
        [ "$(jq -c '[.counts.installed, .counts.pending, .counts.failed]' <<<"$st")" = "[$nmacs,0,0]" ] && break
        [ "$(jq .counts.failed <<<"$st")" = 0 ] || die "$label: InstallProfile failed: $(jq -c .failed <<<"$st")"
        [ "$i" -lt 480 ] || die "$label: policy not installed within 120 s: $(jq -c .counts <<<"$st")"
        sleep 0.25
    done
    local first
    first=$(jq -r '.[0]' <<<"$MACS")
    api GET "/v1/devices/$first/commands?all=true" |
        jq -e '[.commands[] | select(.request_type == "InstallProfile" and .status == "Acknowledged")] | length == 1' \
            >/dev/null || die "$label: $first has no acknowledged InstallProfile"
    say "$label: the SCEP policy's InstallProfile acknowledged by all $nmacs Macs"
}

# --- 2. one container, SQLite on a named volume -------------------------------------------------
T_RUN0=$(date +%s)
podman volume create "$VOL" >/dev/null
for try in 1 2 3 4 5; do
PORT=$(free_port)
URL=https://127.0.0.1:$PORT
run_args=(--name "$NAME" -v "$VOL:/var/lib/scepter" -v "$SECRETS:/run/secrets:ro"
    -p "127.0.0.1:$PORT:8443"
    -e "SCEPTER_PUBLIC_URL=$URL"
    -e SCEPTER_TLS_CERT_FILE=/run/secrets/tls.pem -e SCEPTER_TLS_KEY_FILE=/run/secrets/tls.key
    -e SCEPTER_DEVICE_CA_FILE=/run/secrets/device-ca.pem
    -e "SCEPTER_ENROLL_SCEP_URL=$SCEP_URL"
    -e SCEPTER_ENROLL_SCEP_CHALLENGE_FILE=/run/secrets/scep_challenge
    -e SCEPTER_APNS_CERT_FILE=/run/secrets/push.pem -e SCEPTER_APNS_KEY_FILE=/run/secrets/push.key
    -e SCEPTER_APNS_URL=https://127.0.0.1:2197 -e SCEPTER_APNS_CA_FILE=/run/secrets/tls.pem
    -e SCEPTER_API_KEY_FILE=/run/secrets/api_key
    -e SCEPTER_ENROLL_RATE_LIMIT=0 -e SCEPTER_REPUSH_INTERVAL=5)
if podman run -d "${run_args[@]}" "$IMAGE" >/dev/null 2>"$WORK/podman.err"; then break; fi
grep -q 'address already in use' "$WORK/podman.err" && [ "$try" -lt 5 ] || die "podman run: $(cat "$WORK/podman.err")"
say "port $PORT was taken before podman bound it; another port (try $((try + 1)) of 5)"
podman rm -f "$NAME" >/dev/null 2>&1 || true
done
wait_healthy "$NAME" 90
relay_into "$NAME"
say "container $NAME healthy (SQLite on volume $VOL, published on 127.0.0.1:$PORT)"
uid=$(podman exec "$NAME" sh -c 'sed -n "s/^Uid:[[:space:]]*\([0-9]*\).*/\1/p" /proc/1/status')
[ "$uid" = "$(podman exec "$NAME" id -u scepter)" ] && [ "$uid" != 0 ] ||
    die "the server runs as uid $uid, not the scepter user"
podman exec "$NAME" sh -c 'test "$(stat -c %U /var/lib/scepter/scepter.db)" = scepter' ||
    die "the database on the volume is not the scepter user's"
say "the server runs as uid $uid (scepter); its database is on the volume"

TOKEN=$(api POST /v1/enrollment-tokens '{"uses": 10, "expires_in": "1h", "note": "container test"}' | jq -r .token)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || die "no enrollment token"
curl -sS --cacert "$PKI/ca.pem" -o /dev/null -w '%{http_code}' "$URL/mdm/enroll" | grep -q '^40[13]$' ||
    die "/mdm/enroll without a token is not refused"
device_flow sqlite "$URL/mdm/enroll?token=$TOKEN" 11
SQLITE_SIM=$SIM_PID
SQLITE_POLICY=$POLICY
MAC=$(jq -r '.[0]' <<<"$MACS")
# A command left queued (no push) across the restart.
CMD=$(api POST "/v1/devices/$MAC/commands" '{"command": {"request_type": "ProfileList"}, "push": false}' | jq -r .uuid)
say "ProfileList $CMD queued for $MAC without a push"

# --- 3. restart: the volume keeps everything ----------------------------------------------------
podman restart -t $((DRAIN_S + 10)) "$NAME" >/dev/null 2>"$WORK/podman.err" || die "podman restart: $(cat "$WORK/podman.err")"
wait_healthy "$NAME" 90
relay_into "$NAME"
[ "$(api GET '/v1/devices?enrolled=true' | jq .count)" = $N ] || die "devices lost across the restart"
api GET /v1/policies | jq -e --argjson id "$SQLITE_POLICY" '[.policies[] | select(.id == $id)] | length == 1' >/dev/null ||
    die "policy lost across the restart"
api GET "/v1/policies/$SQLITE_POLICY/status" | jq -e '.counts.installed >= 1' >/dev/null ||
    die "policy state lost across the restart"
api GET "/v1/devices/$MAC/commands" | jq -e --arg u "$CMD" '[.commands[] | select(.uuid == $u)] | length == 1' >/dev/null ||
    die "the queued command was lost across the restart"
say "restarted: $N devices, the policy and the queued command are intact"
api POST /v1/push "{\"devices\": [\"$MAC\"]}" >/dev/null
for i in $(seq 1 240); do
    api GET "/v1/devices/$MAC/commands?all=true" |
        jq -e --arg u "$CMD" '[.commands[] | select(.uuid == $u and .status == "Acknowledged")] | length == 1' \
            >/dev/null && break
    [ "$i" -lt 240 ] || die "the queued ProfileList was not acknowledged within 60 s of the push"
    sleep 0.25
done
say "the queued ProfileList was delivered after the restart and acknowledged"

# --- 4. stop: a clean exit within the drain timeout --------------------------------------------
T0=$(date +%s%N)
podman stop -t $((DRAIN_S + 10)) "$NAME" >/dev/null 2>"$WORK/podman.err" || die "podman stop: $(cat "$WORK/podman.err")"
STOP_MS=$((($(date +%s%N) - T0) / 1000000))
CODE=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$CODE" = 0 ] || die "exit status $CODE after podman stop (137 = killed after the timeout)"
[ "$STOP_MS" -lt $((DRAIN_S * 1000)) ] || die "stopping took $STOP_MS ms, over the drain timeout"
# (Into a file: `podman logs | grep -q` fails under pipefail when grep stops reading early.)
podman logs "$NAME" >"$WORK/stop.log" 2>&1 || true
grep -q 'shutting down' "$WORK/stop.log" && grep -q '"stopped"' "$WORK/stop.log" ||
    die "the logs do not show a drain and a stop"
say "podman stop: exit 0 in $STOP_MS ms (drain timeout ${DRAIN_S} s)"
kill -INT "$SQLITE_SIM" 2>/dev/null || true
wait "$SQLITE_SIM" 2>/dev/null || true
RUN_S=$(($(date +%s) - T_RUN0))

# --- 5. docker-compose.yml with PostgreSQL ------------------------------------------------------
T_C0=$(date +%s)
CDIR=$WORK/compose/docker
mkdir -p "$CDIR"
cp "$SRC/docker/docker-compose.yml" "$SRC/tests/container/compose.override.yml" "$CDIR/"
cp -a "$SECRETS" "$CDIR/secrets"
CPORT=$(free_port)
URL=https://127.0.0.1:$CPORT
export SCEPTER_IMAGE=$IMAGE SCEPTER_PUBLISH=127.0.0.1:$CPORT SCEPTER_PUBLIC_URL=$URL \
    SCEPTER_ENROLL_SCEP_URL=$SCEP_URL SCEPTER_APNS_URL=https://127.0.0.1:2197 \
    SCEPTER_APNS_CA_FILE=/run/secrets/tls.pem
compose() {
    (cd "$CDIR" && podman-compose -p "$PROJECT" -f docker-compose.yml -f compose.override.yml "$@")
}
COMPOSE_UP=1
compose up -d db >"$WORK/compose-db.log" 2>&1 || { cat "$WORK/compose-db.log" >&2; die "compose up db"; }
wait_healthy "${PROJECT}_db_1" 120
say "compose: db (the postgres:15 stand-in) healthy"
for try in 1 2 3 4 5; do
    compose up -d scepter >"$WORK/compose-scepter.log" 2>&1 && break
    grep -q 'address already in use' "$WORK/compose-scepter.log" && [ "$try" -lt 5 ] ||
        { cat "$WORK/compose-scepter.log" >&2; die "compose up scepter"; }
    say "compose: port $CPORT was taken before podman bound it; another port (try $((try + 1)) of 5)"
    podman rm -f "${PROJECT}_scepter_1" >/dev/null 2>&1 || true
    CPORT=$(free_port)
    URL=https://127.0.0.1:$CPORT
    export SCEPTER_PUBLISH=127.0.0.1:$CPORT SCEPTER_PUBLIC_URL=$URL
done
wait_healthy "${PROJECT}_scepter_1" 90
relay_into "${PROJECT}_scepter_1"
podman exec "${PROJECT}_scepter_1" scepter migrate >"$WORK/migrate.out" 2>&1 || die "scepter migrate: $(cat "$WORK/migrate.out")"
grep -Eq '^postgres store at schema version ([0-9]+) \(this binary knows \1\)' "$WORK/migrate.out" ||
    die "migrations not applied at start: $(cat "$WORK/migrate.out")"
say "compose: scepter healthy on PostgreSQL ($(cat "$WORK/migrate.out"))"
curl -sS --cacert "$PKI/ca.pem" -o /dev/null -w '%{http_code}' "$URL/mdm/enroll?secret=wrong" | grep -q '^40[13]$' ||
    die "/mdm/enroll with a wrong secret is not refused"
device_flow postgres "$URL/mdm/enroll?secret=$(cat "$SECRETS/enroll_secret")" 12
kill -INT "$SIM_PID" 2>/dev/null || true
wait "$SIM_PID" 2>/dev/null || true
compose stop -t $((DRAIN_S + 10)) >"$WORK/compose-down.log" 2>&1 || die "compose stop: $(tail -n 5 "$WORK/compose-down.log")"
CODE=$(podman inspect --format '{{.State.ExitCode}}' "${PROJECT}_scepter_1")
[ "$CODE" = 0 ] || die "compose stop: scepter exited with status $CODE"
say "compose stop: scepter exited 0"
COMPOSE_S=$(($(date +%s) - T_C0))

TOTAL=$(($(date +%s) - START))
echo "container: image build ${BUILD_S} s, single container ${RUN_S} s, compose ${COMPOSE_S} s, total ${TOTAL} s; image ${SIZE_MB} MB"
echo "container: ok"
exit 0
}
