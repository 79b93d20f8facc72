#!/bin/sh
# Fetch Debian unstable's containerd (2.x) WITHOUT installing it, for the config-schema tests
# (tests/test_containerd_config.py). Uses a throw-away apt configuration (its own sources list,
# lists and cache), `apt-get download` and `dpkg -x` into a cache directory, then prints the path
# of the containerd binary. Idempotent: when the cache already holds the binary it only prints it.
#
#   tests/tools/fetch-containerd2.sh [CACHE_DIR]     (default /var/cache/dockless-test/containerd2,
#                                                    or ~/.cache/dockless-test/containerd2 when not writable)
#
# The tests find the binary in that cache dir, or through DOCKLESS_CONTAINERD2=<path>.
set -eu

CACHE=${1:-${DOCKLESS_CONTAINERD2_CACHE:-/var/cache/dockless-test/containerd2}}
if [ -z "${1:-}" ] && ! mkdir -p "$(dirname "$CACHE")" 2>/dev/null; then
    CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/dockless-test/containerd2"  # not root: a user cache
fi
BIN="$CACHE/usr/bin/containerd"

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$KEYRING" ] || { echo "fetch-containerd2: $KEYRING missing (apt-get install debian-archive-keyring)" >&2; exit 1; }
command -v apt-get >/dev/null && command -v dpkg >/dev/null || { echo "fetch-containerd2: needs apt-get and dpkg (Debian)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/dl-containerd2.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/parts" "$WORK/prefs" "$WORK/deb"
echo "deb [arch=amd64 signed-by=$KEYRING] http://deb.debian.org/debian sid main" > "$WORK/sources.list"
: > "$WORK/status"

apt_opts() {
    printf '%s\n' \
        -o "Dir::Etc::sourcelist=$WORK/sources.list" \
        -o "Dir::Etc::sourceparts=$WORK/parts" \
        -o "Dir::Etc::preferences=$WORK/preferences" \
        -o "Dir::Etc::preferencesparts=$WORK/prefs" \
        -o "Dir::State::Lists=$WORK/lists" \
        -o "Dir::State::status=$WORK/status" \
        -o "Dir::Cache=$WORK/cache" \
        -o "APT::Architecture=amd64" \
        -o "APT::Architectures=amd64" \
        -o "APT::Sandbox::User=root" \
        -o "Acquire::Languages=none" \
        -o "Debug::NoLocking=1"
}

# shellcheck disable=SC2046
apt-get -q $(apt_opts) update >"$WORK/update.log" 2>&1 || { tail -n 5 "$WORK/update.log" >&2; echo "fetch-containerd2: apt-get update (sid) failed" >&2; exit 1; }
# shellcheck disable=SC2046
(cd "$WORK/deb" && apt-get -q $(apt_opts) download containerd) >"$WORK/download.log" 2>&1 || { tail -n 5 "$WORK/download.log" >&2; echo "fetch-containerd2: apt-get download containerd (sid) failed" >&2; exit 1; }

DEB=$(ls "$WORK"/deb/containerd_*.deb | head -n 1)
mkdir -p "$(dirname "$CACHE")"
STAGE=$(mktemp -d "$(dirname "$CACHE")/.containerd2.XXXXXX")
dpkg -x "$DEB" "$STAGE"
basename "$DEB" > "$STAGE/DEB"
[ -x "$STAGE/usr/bin/containerd" ] || { rm -rf "$STAGE"; echo "fetch-containerd2: $(basename "$DEB") has no usr/bin/containerd" >&2; exit 1; }
rm -rf "$CACHE"
mv "$STAGE" "$CACHE"
echo "$BIN"
