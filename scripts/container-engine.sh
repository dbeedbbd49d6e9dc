#!/bin/sh
# A Docker-compatible container engine on a Debian 12 machine without Docker, and the base
# images the project's containers start from.  Idempotent: what exists is kept.
#   scripts/container-engine.sh [setup]   install, configure, build missing base images
#
# 1. Packages (apt-get, Debian's archive only): podman, runc, debootstrap, uidmap,
#    containernetworking-plugins, its dnsname plugin (compose services find each other by name
#    on a CNI network: without it "db" does not resolve), iptables, socat, podman-compose.
# 2. podman runs rootful with runc (crun fails on hosts with hybrid cgroups: "cgroups in hybrid
#    mode not supported"), cgroupfs (no systemd needed) and lowered default rlimits (a
#    container's default nofile/nproc limits above the host's are refused):
#    /etc/containers/containers.conf.d/50-scepter.conf.
# 3. No registry but Debian's package archive may be reachable, so debian:12 and
#    debian:12-slim are bootstrapped locally (debootstrap --variant=minbase, the machine's own
#    apt sources) and imported; scepter-test/postgres:15 (tests/container/postgres/) stands in
#    for postgres:15.  Each is built only when `podman image exists` says it is missing: a
#    CI machine keeps them between runs.  SCEPTER_REBUILD_BASE=1 rebuilds them.
# Needs root: apt-get, /etc/containers and rootful podman.  DEBIAN_MIRROR overrides
# the archive debootstrap uses (default: the machine's own apt source).
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
MIRROR=${DEBIAN_MIRROR:-}
say() { echo "container-engine: $*"; }
die() { echo "container-engine: $*" >&2; exit 1; }

[ "${1:-setup}" = setup ] || die "usage: $0 [setup]"

# Rootful podman: the images live in root's storage, which the test (run as root) uses.  A user
# with sudo (make test as an ordinary user) runs it through sudo, as scripts/deps.sh does.
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        exec sudo -n --preserve-env=DEBIAN_MIRROR,SCEPTER_REBUILD_BASE "$0" "$@"
    fi
    die "run as root (sudo $0): it installs packages and runs rootful podman"
fi
SUDO=""

# --- 1. packages ------------------------------------------------------------------------------
PKGS="podman runc debootstrap uidmap containernetworking-plugins golang-github-containernetworking-plugin-dnsname
iptables socat podman-compose
python3-yaml ca-certificates curl jq"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- 2. configuration -------------------------------------------------------------------------
CONF_DIR=/etc/containers/containers.conf.d
CONF=$CONF_DIR/50-scepter.conf
WANT='# Written by scepter scripts/container-engine.sh.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
'
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$(printf '%s' "$WANT")" ]; then
    say "writing $CONF"
    $SUDO mkdir -p "$CONF_DIR"
    printf '%s' "$WANT" | $SUDO tee "$CONF" >/dev/null
fi
podman info >/dev/null 2>&1 || die "podman does not answer: $(podman info 2>&1 | tail -n 3)"
say "podman $(podman version --format '{{.Client.Version}}') with $(podman info --format '{{.Host.OCIRuntime.Name}}')"

# --- 3. base images -----------------------------------------------------------------------------
rebuild=${SCEPTER_REBUILD_BASE:-}
have() { [ -z "$rebuild" ] && podman image exists "$1"; }

if ! have debian:12 || ! have debian:12-slim; then
    T0=$(date +%s)
    WORK=$(mktemp -d /var/tmp/scepter-debootstrap.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT
    # The archive this machine installs from (its first deb.debian.org-like URI).
    if [ -z "$MIRROR" ]; then
        MIRROR=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/*$/\1/p' \
            /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
        [ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb[[:space:]]\{1,\}\(http[^[:space:]]*\/debian\)\/*[[:space:]].*/\1/p' \
            /etc/apt/sources.list 2>/dev/null | head -n1)
        [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
    fi
    say "debootstrap bookworm (minbase) from $MIRROR"
    $SUDO debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
        tail -n 20 "$WORK/debootstrap.log" >&2
        die "debootstrap failed"
    }
    R=$WORK/rootfs
    # The machine's apt sources and its Acquire settings (a snapshot mirror needs
    # Check-Valid-Until false, a proxy its address), so apt-get works inside the images.
    $SUDO rm -f "$R/etc/apt/sources.list"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && $SUDO cp "$f" "$R$f"
    done
    for f in /etc/apt/apt.conf.d/*; do
        [ -f "$f" ] && grep -q '^[[:space:]]*Acquire::' "$f" && $SUDO cp "$f" "$R$f"
    done
    # What the official images do: no recommends, no caches, clean apt lists.
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' |
        $SUDO tee "$R/etc/apt/apt.conf.d/90scepter-image" >/dev/null
    $SUDO sh -c "rm -rf '$R'/var/lib/apt/lists/* '$R'/var/cache/apt/*.bin '$R'/var/cache/apt/archives/*.deb '$R'/var/log/*.log '$R'/tmp/*"
    $SUDO sh -c "tar -C '$R' -c . | podman import -q --change 'CMD [\"bash\"]' - debian:12" >/dev/null
    # -slim: no documentation, manual pages or translations, now or in later installs.
    printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\npath-exclude /usr/share/lintian/*\n' |
        $SUDO tee "$R/etc/dpkg/dpkg.cfg.d/docker-slim" >/dev/null
    $SUDO sh -c "find '$R/usr/share/doc' -mindepth 1 -not -name copyright -not -type d -delete; rm -rf '$R'/usr/share/man/* '$R'/usr/share/info/* '$R'/usr/share/lintian/*; find '$R/usr/share/locale' -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +"
    $SUDO sh -c "tar -C '$R' -c . | podman import -q --change 'CMD [\"bash\"]' - debian:12-slim" >/dev/null
    say "debian:12 and debian:12-slim built in $(($(date +%s) - T0)) s"
else
    say "debian:12 and debian:12-slim: cached"
fi

if ! have scepter-test/postgres:15; then
    T0=$(date +%s)
    log=$(mktemp)
    podman build --format docker -t scepter-test/postgres:15 "$SRC/tests/container/postgres" >"$log" 2>&1 || {
        tail -n 30 "$log" >&2
        rm -f "$log"
        die "building scepter-test/postgres:15 failed"
    }
    rm -f "$log"
    say "scepter-test/postgres:15 built in $(($(date +%s) - T0)) s"
else
    say "scepter-test/postgres:15: cached"
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(localhost/)?(debian|scepter-test/postgres)' || true
