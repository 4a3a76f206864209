#!/bin/bash
# The intra-host migration story, with no typing: a lab (scripts/lab.sh, in a namespace of its
# own), guest A on the bridge with the pinned MAC, a client loop on one keep-alive connection
# (GET /os/date every 100 ms), guest B waiting with -incoming, migrate A -> B through A's
# monitor, then back B -> A' (ping-pong), then a summary. Everything is cleaned up.
#
# usage: scripts/demo-intra-host.sh [ROUNDTRIPS]     (default 1: A -> B -> A')
# Exit status: 0 when every migration completed and the client lost no request and saw no
# reset; 1 otherwise. Needs root, /dev/kvm, build/tern and build/guest/guest.elf (make, make guest).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/demo-lib.sh
. "$ROOT/scripts/demo-lib.sh"
export TERN_LAB_NS=${TERN_LAB_NS:-terndemo}
NS=$TERN_LAB_NS
ROUNDTRIPS=${1:-1}

cleanup() {
	trap '' INT TERM # a second Ctrl-C must not cut the clean-up short
	demo_cleanup
	"$ROOT/scripts/lab.sh" down >/dev/null 2>&1 || true
}
demo_fresh "$NS"
trap cleanup EXIT
trap 'exit 1' INT TERM

demo_check
[[ $ROUNDTRIPS =~ ^[1-9][0-9]*$ ]] || die "ROUNDTRIPS must be a positive number"

echo "demo: lab up (namespace $NS, bridge osvbr0, dnsmasq pins $MAC to $IP)"
"$ROOT/scripts/lab.sh" up >/dev/null
demo_start "$NS" A
demo_wait_address A
echo "demo: guest A is up at $IP; starting the client loop"
demo_client "$NS"
sleep 2

cur=A
for i in $(seq "$ROUNDTRIPS"); do
	demo_migrate "$cur" "B$i" "$NS" 127.0.0.1 $((4443 + 2 * i))
	sleep 1
	demo_migrate "B$i" "A$i" "$NS" 127.0.0.1 $((4444 + 2 * i))
	cur=A$i
	sleep 1
done
demo_summary
