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
TERN=$ROOT/build/tern
GUEST=$ROOT/build/guest/guest.elf
export TERN_LAB_NS=${TERN_LAB_NS:-terndemo}
NS=$TERN_LAB_NS
MAC=52:54:30:30:30:30
IP=192.168.123.10
ROUNDTRIPS=${1:-1}
WORK=$(mktemp -d /tmp/tern-demo.XXXXXX)
PIDS=()

die() {
	echo "demo: $*" >&2
	exit 1
}

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	"$ROOT/scripts/lab.sh" down >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[[ $EUID -eq 0 ]] || die "needs root (namespaces, taps)"
[[ -x $TERN && -f $GUEST ]] || die "build first: make && make guest"
[[ $ROUNDTRIPS =~ ^[1-9][0-9]*$ ]] || die "ROUNDTRIPS must be a positive number"

# start NAME [tern options...]: a guest in the lab, console to $WORK/NAME.log, monitor socket.
start() {
	local name=$1
	shift
	ip netns exec "$NS" "$TERN" -kernel "$GUEST" -m 128M -nographic \
		-serial "file:$WORK/$name.log" -monitor "unix:$WORK/$name.mon,server,nowait" \
		-netdev bridge,id=n0,br=osvbr0 -device virtio-net,netdev=n0,mac=$MAC "$@" \
		</dev/null >>"$WORK/$name.err" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		[[ -S $WORK/$name.mon ]] && return 0
		sleep 0.05
	done
	die "guest $name did not start: $(cat "$WORK/$name.err")"
}

mon() {
	ip netns exec "$NS" "$ROOT/scripts/monitor.py" "$WORK/$1.mon" "${@:2}"
}

# migrate FROM TO PORT: TO waits on PORT, FROM migrates to it; prints one line of figures.
migrate() {
	local from=$1 to=$2 port=$3 info
	start "$to" -incoming "tcp:0:$port"
	mon "$from" "migrate \"tcp:127.0.0.1:$port\"" >/dev/null || true
	info=$(mon "$from" "info migrate")
	grep -q "Migration status: completed" <<<"$info" ||
		die "migration $from -> $to failed: $(grep -m1 '^error' <<<"$info" || echo "$info" | head -1)" \
			"$(tail -2 "$WORK/$to.err")"
	printf '%s -> %s: total %s ms, downtime %s ms\n' "$from" "$to" \
		"$(sed -n 's/^total time: \([0-9.]*\).*/\1/p' <<<"$info")" \
		"$(sed -n 's/^downtime: \([0-9.]*\).*/\1/p' <<<"$info")" | tee -a "$WORK/migrations"
	mon "$from" quit >/dev/null || true
}

echo "demo: lab up (namespace $NS, bridge osvbr0, dnsmasq pins $MAC to $IP)"
"$ROOT/scripts/lab.sh" up >/dev/null
start A
for _ in $(seq 200); do
	grep -q "eth0: $IP" "$WORK/A.log" 2>/dev/null && break
	sleep 0.1
done
grep -q "eth0: $IP" "$WORK/A.log" || die "guest A got no address: $(tail -3 "$WORK/A.log")"
echo "demo: guest A is up at $IP; starting the client loop"
ip netns exec "$NS" python3 "$ROOT/scripts/client-loop.py" "$IP" --interval-ms 100 \
	--summary "$WORK/client.json" --quiet &
CLIENT=$!
PIDS+=($CLIENT)
sleep 2

cur=A
for i in $(seq "$ROUNDTRIPS"); do
	migrate "$cur" "B$i" $((4443 + 2 * i))
	sleep 1
	migrate "B$i" "A$i" $((4444 + 2 * i))
	cur=A$i
	sleep 1
done

kill -TERM "$CLIENT"
wait "$CLIENT" || true
python3 - "$WORK/client.json" "$WORK/migrations" <<'PY'
import json, re, sys
c = json.load(open(sys.argv[1]))
rows = open(sys.argv[2]).read().splitlines()
print("\n=== summary ===")
print("migrations done: %d" % len(rows))
for r in rows:
    print("  " + r)
print("client: %d requests, largest delta %.1f ms (interval %.0f ms)"
      % (c["requests"], c["max_delta_ms"], c["interval_ms"]))
print("requests lost: %d (must be 0)" % c["errors"])
print("connection resets: %d (must be 0)" % c["resets"])
sys.exit(1 if c["errors"] or c["resets"] else 0)
PY
