#!/bin/bash
# The intra-host lab network (README: "Networking"): a network namespace holding bridge
# osvbr0 (192.168.123.1/24) and a dnsmasq that serves DHCP on that bridge only, pinning
# 52:54:30:30:30:30 to 192.168.123.10 with an infinite lease. Nothing outside the namespace is
# configured: no host interface, no host sysctl, no traffic leaves it.
#
# usage: scripts/lab.sh up|down|status
#   up      create the namespace, bridge and dnsmasq (again: repairs what is missing)
#   down    kill what runs in the namespace, delete it and the state dir (again: no-op)
#   status  namespace, bridge, dnsmasq and leases; exit 0 when the lab is up, 3 when not
#
# Environment: TERN_LAB_NS (default ternlab) names the namespace, so that tests can run a
# private lab; the state (pid file, leases, dnsmasq log) is in /run/tern-lab/$TERN_LAB_NS/.
#
# Run things in the lab with `ip netns exec ternlab CMD`; tern creates its tap there itself:
#   ip netns exec ternlab build/tern -kernel K -netdev bridge,id=n0,br=osvbr0 \
#       -device virtio-net,netdev=n0,mac=52:54:30:30:30:30
set -Eeuo pipefail

NS=${TERN_LAB_NS:-ternlab}
BR=osvbr0
BR_ADDR=192.168.123.1/24
BR_MAC=52:54:30:00:00:01
DHCP_RANGE=192.168.123.100,192.168.123.200,12h
PINNED_MAC=52:54:30:30:30:30
PINNED_IP=192.168.123.10
STATE=/run/tern-lab/$NS
PIDFILE=$STATE/dnsmasq.pid
LEASES=$STATE/dnsmasq.leases
LOG=$STATE/dnsmasq.log
PROG=lab.sh

die() {
	echo "$PROG: $*" >&2
	exit 1
}

# dnsmasq_failed WHAT: its log's last lines, then the error.
dnsmasq_failed() {
	tail -n 5 "$LOG" >&2 2>/dev/null || true
	die "dnsmasq $1 in namespace $NS (its log's last lines above)"
}

# One line naming the command that failed, for anything set -e stops on.
trap 'rc=$?; echo "$PROG: \"$BASH_COMMAND\" failed (exit $rc, line $LINENO)" >&2; exit $rc' ERR

nsexec() {
	ip netns exec "$NS" "$@"
}

ns_exists() {
	# grep without -q reads to the end: one that quits at the match could kill awk with SIGPIPE
	# (a long list), and pipefail would make that a namespace that is not there.
	[ -e "/run/netns/$NS" ] ||
		ip netns list 2>/dev/null | awk '{print $1}' | grep -xF -- "$NS" >/dev/null
}

# The dnsmasq pid from the pid file, only if that process is alive and in our namespace.
dnsmasq_pid() {
	local pid
	[ -r "$PIDFILE" ] || return 1
	pid=$(tr -dc 0-9 <"$PIDFILE")
	[ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
	grep -q dnsmasq "/proc/$pid/comm" 2>/dev/null || return 1
	[ "$(ip netns identify "$pid" 2>/dev/null)" = "$NS" ] || return 1
	echo "$pid"
}

check_env() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces need CAP_NET_ADMIN)"
	command -v ip >/dev/null || die "ip not found: install iproute2"
	# Not . or ..: /run/netns/.. is a directory that exists, and ip refuses both names.
	[[ "$NS" =~ ^[A-Za-z0-9_.-]{1,64}$ && "$NS" != . && "$NS" != .. ]] ||
		die "TERN_LAB_NS='$NS': use letters, digits, _ . - (not . or ..)"
}

# The EXIT trap of an up that made the namespace: takes down what it made, unless it finished.
# A second Ctrl-C must not cut that short and leave the namespace half taken down.
undo_up() {
	local rc=$?
	trap '' INT TERM HUP
	[ $rc -eq 0 ] || down >/dev/null 2>&1 || true
	exit $rc
}

up() {
	command -v dnsmasq >/dev/null || die "dnsmasq not found: install dnsmasq-base"
	if ! ns_exists; then
		# A lab this run starts and does not finish (an error, Ctrl-C, SIGTERM, a closed
		# terminal) goes again. Each signal needs its trap: on one with none, the EXIT trap
		# sees the last command's status (0, often) and would keep the half-made lab.
		trap undo_up EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
		trap 'exit 129' HUP
		ip netns add "$NS"
	fi
	mkdir -p "$STATE"
	nsexec ip link set lo up
	if ! nsexec ip link show "$BR" >/dev/null 2>&1; then
		# STP off and no forward delay: ports forward as soon as they come up. A MAC of
		# its own: else the bridge takes its lowest port's, which changes as guests come
		# and go, and their ARP caches would point at an address nobody answers.
		nsexec ip link add "$BR" address "$BR_MAC" type bridge stp_state 0 forward_delay 0
	fi
	# DHCP through the bridge: with br_netfilter loaded, bridged frames could go through
	# iptables. Turn that off for this bridge and, where the namespace has its own bridge-nf
	# sysctls (kernel 5.3+), for this namespace only; the namespace's tables are empty anyway.
	nsexec ip link set "$BR" type bridge nf_call_iptables 0 nf_call_ip6tables 0 \
		nf_call_arptables 0 2>/dev/null || true
	# shellcheck disable=SC2016 # expanded by the inner sh
	nsexec sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-iptables \
		/proc/sys/net/bridge/bridge-nf-call-ip6tables \
		/proc/sys/net/bridge/bridge-nf-call-arptables; do
		[ -w "$f" ] && echo 0 >"$f"; done; true' 2>/dev/null || true
	nsexec ip addr replace "$BR_ADDR" dev "$BR"
	nsexec ip link set "$BR" up

	if ! dnsmasq_pid >/dev/null; then
		rm -f "$PIDFILE"
		touch "$LEASES" "$LOG"
		# dnsmasq drops root for nobody; let it still write its log.
		chown nobody "$LOG" 2>/dev/null || true
		if ! nsexec dnsmasq \
			--conf-file=/dev/null \
			--port=0 \
			--interface="$BR" --bind-interfaces --except-interface=lo \
			--dhcp-range="$DHCP_RANGE" \
			--dhcp-host="$PINNED_MAC,$PINNED_IP,infinite" \
			--dhcp-authoritative \
			--dhcp-leasefile="$LEASES" \
			--pid-file="$PIDFILE" \
			--log-facility="$LOG" --log-dhcp; then
			dnsmasq_failed "failed to start"
		fi
		for _ in $(seq 50); do
			dnsmasq_pid >/dev/null && break
			sleep 0.1
		done
		dnsmasq_pid >/dev/null || dnsmasq_failed "did not stay up"
	fi
	trap - EXIT INT TERM HUP
	echo "lab $NS up: bridge $BR $BR_ADDR, dnsmasq pid $(dnsmasq_pid), $PINNED_MAC -> $PINNED_IP"
	echo "run in it with: ip netns exec $NS COMMAND"
}

# Running, not a zombie waiting for its parent to reap it.
alive() {
	local st
	st=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# TERM, then KILL after a grace period, for the given pids.
stop_pids() {
	local pid left
	[ $# -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null || true
	for _ in $(seq 30); do
		left=0
		for pid in "$@"; do
			alive "$pid" && left=1
		done
		[ $left -eq 0 ] && return 0
		sleep 0.1
	done
	kill -KILL "$@" 2>/dev/null || true
	sleep 0.1
}

down() {
	local pid pids=()
	# From inside, stopping what runs in the lab would stop this script and its shell too.
	if [ "$(ip netns identify $$ 2>/dev/null)" = "$NS" ]; then
		echo "$PROG: run 'down' from outside namespace $NS (this shell is inside it)" >&2
		exit 1
	fi
	pid=$(dnsmasq_pid) || pid=
	if [ -n "$pid" ]; then
		stop_pids "$pid"
	fi
	if ns_exists; then
		# Whatever else still runs in the lab (tern, clients) keeps the namespace alive.
		mapfile -t pids < <(ip netns pids "$NS" 2>/dev/null || true)
		if [ ${#pids[@]} -gt 0 ]; then
			echo "$PROG: stopping ${#pids[@]} process(es) still in namespace $NS: ${pids[*]}" >&2
			stop_pids "${pids[@]}"
		fi
		ip netns del "$NS"
	fi
	rm -rf "$STATE"
	rmdir /run/tern-lab 2>/dev/null || true
	echo "lab $NS down"
}

status() {
	local pid rc=0
	if ! ns_exists; then
		echo "namespace $NS: absent (lab is down)"
		return 3
	fi
	echo "namespace $NS: present"
	if nsexec ip link show "$BR" >/dev/null 2>&1; then
		local addrs ports state=down
		# Administratively up is what counts: with an address of its own and no port, the
		# bridge has no carrier until the first guest's tap joins.
		nsexec ip -br link show "$BR" | grep -q '[<,]UP[,>]' && state=up
		addrs=$(nsexec ip -4 -br addr show dev "$BR" | awk '{$1=$2=""; print $0}' | xargs)
		ports=$(nsexec ip -br link show master "$BR" | awk '{sub(/@.*/, "", $1); print $1}' | xargs)
		echo "bridge $BR: $state, ${addrs:-no address}, ports: ${ports:-none}"
		[ "$state" = up ] || rc=3
	else
		echo "bridge $BR: absent"
		rc=3
	fi
	if pid=$(dnsmasq_pid); then
		echo "dnsmasq: running, pid $pid (log $LOG)"
	else
		echo "dnsmasq: not running"
		rc=3
	fi
	if [ -s "$LEASES" ]; then
		echo "leases ($LEASES):"
		# expiry mac ip hostname client-id; expiry 0 is an infinite lease.
		awk '{ printf "  %s %s %s %s\n", $2, $3, ($4 == "*" ? "-" : $4),
			($1 == 0 ? "infinite" : "until " strftime("%F %T", $1)) }' "$LEASES"
	else
		echo "leases: none"
	fi
	return $rc
}

case "${1:-}" in
up)
	check_env
	up
	;;
down)
	check_env
	down
	;;
status)
	check_env
	rc=0
	status || rc=$?
	exit $rc
	;;
*)
	echo "usage: $0 up|down|status   (namespace \$TERN_LAB_NS, default ternlab)" >&2
	exit 2
	;;
esac
