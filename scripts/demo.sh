#!/usr/bin/env bash
# The "run it" demo: sluice-reflector on a TAP interface inside a private network namespace,
# pinged 3 times, then loaded for ~8 s with mixed-size UDP (64..8000 bytes, so many datagrams
# travel as IPv4 fragments) by sluice-udpgen, which checks every echo byte for byte. The
# reflector stops by itself after 12 s and prints its summary.
#
# Needs root (namespaces, TAP). Touches nothing outside the namespace `sluice-demo`, uses only
# 198.18.0.0/15 addresses, and removes the namespace and the DPDK runtime dir on every exit
# path (normal end, error, Ctrl-C).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

NS=sluice-demo
PREFIX=sluice-demo
RUNTIME_DIR=/var/run/dpdk/$PREFIX
REFLECTOR=build/apps/reflector/sluice-reflector
UDPGEN=build/apps/tools/sluice-udpgen
KERNEL_IP=198.18.0.1
REFLECTOR_IP=198.18.0.2
REFLECTOR_SECONDS=12
LOAD_SECONDS=8

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%sdemo: %s%s\n' "$bold" "$*" "$plain"; }
die() {
    echo "demo: error: $*" >&2
    exit 1
}

((EUID == 0)) || die "run me as root: I create a network namespace and a TAP interface"

scripts/setup.sh

# A namespace left by an interrupted earlier run is removed, unless a demo still runs in it.
if [[ -e /var/run/netns/$NS ]]; then
    [[ -z $(ip netns pids "$NS" 2>/dev/null) ]] || die "another demo is running in namespace $NS"
    ip netns del "$NS"
fi
rm -rf "$RUNTIME_DIR"

reflector_pid=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $reflector_pid ]] && kill -0 "$reflector_pid" 2>/dev/null; then
        kill -INT "$reflector_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$reflector_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$reflector_pid" 2>/dev/null || true
    fi
    [[ -z $reflector_pid ]] || wait "$reflector_pid" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$RUNTIME_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Polls a condition (a command) until it holds, for at most $1 seconds.
wait_until() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@"; do
        kill -0 "$reflector_pid" 2>/dev/null || die "the reflector exited while waiting for $what"
        ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
        sleep 0.1
    done
}
tap_exists() { ip -n "$NS" link show sl0 >/dev/null 2>&1; }
reflector_answers() { ip netns exec "$NS" ping -n -q -c 1 -W 1 "$REFLECTOR_IP" >/dev/null 2>&1; }

# One lcore for the reflector's busy-polling worker, the other for the kernel and udpgen.
lcore=1
(($(nproc) >= 2)) || lcore=0

say "starting sluice-reflector in namespace $NS on net_tap (sl0), $REFLECTOR_IP/24, for ${REFLECTOR_SECONDS}s"
ip netns add "$NS"
ip -n "$NS" link set lo up
started=$SECONDS
ip netns exec "$NS" "$REFLECTOR" --port net_tap0,iface=sl0 --ip "$REFLECTOR_IP/24" \
    --udp-ports 9000 --duration "$REFLECTOR_SECONDS" -- -l "$lcore" --file-prefix "$PREFIX" &
reflector_pid=$!

wait_until 30 "the TAP interface sl0" tap_exists
ip -n "$NS" addr add "$KERNEL_IP/24" dev sl0
ip -n "$NS" link set sl0 up
wait_until 10 "the first echo reply" reflector_answers

say "ping $REFLECTOR_IP from the kernel side ($KERNEL_IP)"
ip netns exec "$NS" ping -n -c 3 -i 0.2 -W 2 "$REFLECTOR_IP"

# Leave the reflector a second to spare, should its start have been slow.
load=$((REFLECTOR_SECONDS - (SECONDS - started) - 2))
((load <= LOAD_SECONDS)) || load=$LOAD_SECONDS
((load >= 2)) || load=2
say "sluice-udpgen: ${load}s of UDP to $REFLECTOR_IP:9000, sizes 64-8000, every echo verified"
udpgen_rc=0
ip netns exec "$NS" "$UDPGEN" --dst "$REFLECTOR_IP:9000" --sizes 64-8000 --duration "$load" \
    --window 32 --seed 1 --quiet || udpgen_rc=$?

say "waiting for the reflector to stop by itself"
deadline=$((SECONDS + REFLECTOR_SECONDS + 10))
while kill -0 "$reflector_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
kill -0 "$reflector_pid" 2>/dev/null && die "the reflector did not stop after --duration"
reflector_rc=0
wait "$reflector_pid" || reflector_rc=$?
reflector_pid=

((reflector_rc == 0)) || die "the reflector exited with $reflector_rc"
((udpgen_rc == 0)) || die "sluice-udpgen exited with $udpgen_rc"
say "done: every echo that came back was byte-identical"
