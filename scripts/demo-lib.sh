# Shared by scripts/demo-*.sh (sourced, not run): guests started with a monitor socket, migrations
# driven through it, the client loop and the closing summary. Each guest is named (A, B1, A1...)
# and runs in a network namespace given with it; its console goes to $WORK/NAME.log.
# The demo sets ROOT, then sources this; it adds its own clean-up to demo_cleanup's.
# shellcheck shell=bash

TERN=$ROOT/build/tern
GUEST=$ROOT/build/guest/guest.elf
MAC=52:54:30:30:30:30
IP=192.168.123.10
WORK= # made by demo_check, once the demo's EXIT trap is set
PIDS=()

die() {
	echo "demo: $*" >&2
	exit 1
}

demo_cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[[ -z $WORK ]] || rm -rf "$WORK"
}

# demo_fresh NS...: refuses namespaces that exist already (someone's lab: clean-up would take
# it down). Before the EXIT trap is set.
demo_fresh() {
	local ns
	for ns in "$@"; do
		# grep without -q reads to the end: one that quits at the match would kill awk with
		# SIGPIPE on a long list (a host with many namespaces), and with pipefail the lab
		# would go unseen, and be taken down at the end.
		if ip netns list 2>/dev/null | awk '{print $1}' | grep -xF -- "$ns" >/dev/null; then
			echo "demo: namespace $ns exists already (a lab of yours?): set TERN_LAB_NS to" \
				"another name, or take it down with TERN_LAB_NS=$ns scripts/lab.sh down" >&2
			exit 1
		fi
	done
}

# demo_check: root and a build, then the work directory (consoles, sockets, figures).
demo_check() {
	[[ $EUID -eq 0 ]] || die "needs root (namespaces, taps)"
	[[ -x $TERN && -f $GUEST ]] || die "build first: make && make guest"
	WORK=$(mktemp -d /tmp/tern-demo.XXXXXX)
}

# demo_start NS NAME [tern options...]: a guest on bridge osvbr0 of namespace NS.
demo_start() {
	local ns=$1 name=$2
	shift 2
	ip netns exec "$ns" "$TERN" -kernel "$GUEST" -m 128M -nographic \
		-serial "file:$WORK/$name.log" -monitor "unix:$WORK/$name.mon,server,nowait" \
		-netdev bridge,id=n0,br=osvbr0 -device virtio-net,netdev=n0,mac=$MAC "$@" \
		</dev/null >>"$WORK/$name.err" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 100); do
		# The monitor answers once tern is all set up (listening, if -incoming).
		[[ -S $WORK/$name.mon ]] && demo_mon "$name" "info status" >/dev/null && return 0
		kill -0 "${PIDS[-1]}" 2>/dev/null || break
		sleep 0.05
	done
	die "guest $name did not start: $(cat "$WORK/$name.err")"
}

# demo_mon NAME CMD...: the answers of NAME's monitor (the socket is a file: any namespace).
demo_mon() {
	"$ROOT/scripts/monitor.py" "$WORK/$1.mon" "${@:2}"
}

# demo_wait_address NAME: until the guest has its pinned address from dnsmasq.
demo_wait_address() {
	for _ in $(seq 200); do
		grep -qwF "eth0: $IP" "$WORK/$1.log" 2>/dev/null && return 0
		sleep 0.1
	done
	die "guest $1 got no address: $(tail -3 "$WORK/$1.log")"
}

# demo_client NS: the client loop (GET /os/date every 100 ms on one connection), in NS.
demo_client() {
	ip netns exec "$1" python3 "$ROOT/scripts/client-loop.py" "$IP" --interval-ms 100 \
		--summary "$WORK/client.json" --quiet &
	CLIENT=$!
	PIDS+=("$CLIENT")
}

# demo_migrate FROM TO TO_NS HOST PORT: TO waits on tcp:0:PORT in TO_NS, FROM migrates to
# tcp:HOST:PORT and quits; prints one line of figures.
demo_migrate() {
	local from=$1 to=$2 ns=$3 host=$4 port=$5 info
	demo_start "$ns" "$to" -incoming "tcp:0:$port"
	demo_mon "$from" "migrate \"tcp:$host:$port\"" >/dev/null || true
	info=$(demo_mon "$from" "info migrate")
	grep -q "Migration status: completed" <<<"$info" ||
		die "migration $from -> $to failed: $(grep -m1 '^error' <<<"$info" || echo "$info" | head -1)" \
			"$(tail -2 "$WORK/$to.err")"
	printf '%s -> %s: total %s ms, downtime %s ms\n' "$from" "$to" \
		"$(sed -n 's/^total time: \([0-9.]*\).*/\1/p' <<<"$info")" \
		"$(sed -n 's/^downtime: \([0-9.]*\).*/\1/p' <<<"$info")" | tee -a "$WORK/migrations"
	demo_mon "$from" quit >/dev/null || true
}

# demo_summary: stops the client and prints the summary; exit status 1 when it lost a request
# or saw a reset.
demo_summary() {
	kill -TERM "$CLIENT" 2>/dev/null || true
	wait "$CLIENT" || true
	python3 - "$WORK/client.json" "$WORK/migrations" <<'PY'
import json, sys
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
}
