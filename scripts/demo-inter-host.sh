#!/bin/bash
# The inter-host migration story (README: "Live migration"), with no typing. Two namespaces play
# hosts A and B, each with its own bridge osvbr0 and an uplink (veth) into a third, the switch:
# the lab of scripts/lab.sh, which holds dnsmasq and the client. The migration stream runs over a
# link of its own between A and B (192.168.200.1 and .2). Guest A runs on host A with the pinned
# MAC; a client loop keeps one connection busy (GET /os/date every 100 ms); the guest migrates to
# host B and back (ping-pong), and a summary follows. Only the destination's announcement (RARP)
# tells the switch that the guest's MAC moved to the other uplink. Everything is cleaned up.
#
# usage: scripts/demo-inter-host.sh [ROUNDTRIPS]     (default 1: A -> B -> A')
# Exit status: 0 when every migration completed and the client lost no request and saw no
# reset; 1 otherwise. Needs root, /dev/kvm, build/tern and build/guest/guest.elf (make, make guest).
# Between two real hosts the commands are the same: `-incoming tcp:0:4444` on B, and
# `migrate "tcp:B:4444"` in A's monitor, with both hosts' bridges on one LAN.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/demo-lib.sh
. "$ROOT/scripts/demo-lib.sh"
export TERN_LAB_NS=${TERN_LAB_NS:-terninter}
SWITCH=$TERN_LAB_NS
HOST_A=$SWITCH-a
HOST_B=$SWITCH-b
MIG_A=192.168.200.1
MIG_B=192.168.200.2
ROUNDTRIPS=${1:-1}

hosts_down() {
	local ns
	for ns in "$HOST_A" "$HOST_B"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
	done
}

cleanup() {
	trap '' INT TERM # a second Ctrl-C must not cut the clean-up short
	demo_cleanup
	hosts_down
	"$ROOT/scripts/lab.sh" down >/dev/null 2>&1 || true
}
demo_fresh "$SWITCH" "$HOST_A" "$HOST_B"
trap cleanup EXIT
trap 'exit 1' INT TERM

# host NS SIDE: a host namespace with bridge osvbr0 (no address: it only switches) and its
# uplink into the switch's bridge, where it is SIDE-up.
host() {
	local ns=$1 side=$2
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" link add osvbr0 type bridge stp_state 0 forward_delay 0
	ip -n "$ns" link add uplink type veth peer name "$side-up" netns "$SWITCH"
	ip -n "$ns" link set uplink master osvbr0 up
	ip -n "$ns" link set osvbr0 up
	ip -n "$SWITCH" link set "$side-up" master osvbr0 up
}

# The migration link, A's mig0 to B's mig0, apart from the guests' network.
mig_link() {
	ip -n "$HOST_A" link add mig0 type veth peer name mig0 netns "$HOST_B"
	ip -n "$HOST_A" addr add "$MIG_A/30" dev mig0
	ip -n "$HOST_B" addr add "$MIG_B/30" dev mig0
	ip -n "$HOST_A" link set mig0 up
	ip -n "$HOST_B" link set mig0 up
}

# Which uplink the switch now sends the guest's frames to.
switch_port() {
	local port
	# awk reads to the end: one that left at the match could kill bridge with SIGPIPE (pipefail).
	port=$(bridge -n "$SWITCH" fdb show br osvbr0 |
		awk -v mac="$MAC" '$1 == mac && !p { p = $3 } END { print p }')
	echo "   switch: the guest's MAC is behind ${port:-no port yet}"
}

demo_check
[[ $ROUNDTRIPS =~ ^[1-9][0-9]*$ ]] || die "ROUNDTRIPS must be a positive number"

echo "demo: switch up (namespace $SWITCH, bridge osvbr0, dnsmasq pins $MAC to $IP)"
"$ROOT/scripts/lab.sh" up >/dev/null
host "$HOST_A" a
host "$HOST_B" b
mig_link
echo "demo: hosts $HOST_A and $HOST_B up, each on an uplink; migration link $MIG_A - $MIG_B"
demo_start "$HOST_A" A
demo_wait_address A
switch_port
echo "demo: guest A is up at $IP on host $HOST_A; starting the client loop in the switch"
demo_client "$SWITCH"
sleep 2

cur=A
for i in $(seq "$ROUNDTRIPS"); do
	demo_migrate "$cur" "B$i" "$HOST_B" "$MIG_B" $((4443 + 2 * i))
	switch_port
	sleep 1
	demo_migrate "B$i" "A$i" "$HOST_A" "$MIG_A" $((4444 + 2 * i))
	switch_port
	cur=A$i
	sleep 1
done
demo_summary
