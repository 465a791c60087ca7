#!/usr/bin/env bash
# Installs what Sluice needs (Debian 12), configures the meson build dir `build` and builds it.
# Idempotent and quiet when everything is already there. With $CI set, warnings are errors.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(dpdk dpdk-dev libdpdk-dev meson ninja-build pkg-config g++ libgtest-dev
          libbenchmark-dev python3 iproute2 ethtool iputils-ping traceroute socat redis-tools)
BUILD_DIR=build

die() {
    echo "setup.sh: error: $*" >&2
    exit 1
}

# --- packages ------------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup.sh: installing ${missing[*]}"
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
    SUDO=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to install ${missing[*]}"
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq || die "apt-get update failed"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi

# --- configure -----------------------------------------------------------------------------
werror=false
[[ -n ${CI:-} ]] && werror=true
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
    echo "setup.sh: meson setup $BUILD_DIR (werror=$werror)"
    meson setup "$BUILD_DIR" -Dwerror="$werror" || die "meson setup failed"
elif [[ $werror == true ]]; then
    current=$(meson introspect "$BUILD_DIR" --buildoptions |
        python3 -c 'import json,sys; print(next(str(o["value"]).lower() for o in json.load(sys.stdin) if o["name"] == "werror"))') \
        || die "cannot read the options of $BUILD_DIR (delete it and rerun)"
    if [[ $current != true ]]; then
        echo "setup.sh: CI: turning on werror in $BUILD_DIR"
        meson configure "$BUILD_DIR" -Dwerror=true >/dev/null || die "meson configure failed"
    fi
fi

# --- build ---------------------------------------------------------------------------------
dry_run=$(ninja -C "$BUILD_DIR" -n 2>&1 || true)
if [[ $dry_run != *"ninja: no work to do."* ]]; then
    ninja -C "$BUILD_DIR" || die "build failed (ninja -C $BUILD_DIR)"
fi
