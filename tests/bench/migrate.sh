#!/usr/bin/env bash
# Migration benchmark: for idle guests of 128 MiB, 512 MiB and 2 GiB, the medians of N
# migrations (tern -> tern over tcp on loopback): total time, downtime, setup time, bytes sent,
# rounds; and the same for QEMU (Debian's qemu-system-x86, same guest booted via PVH) in the
# same run, with the ratios. Figures are printed, never asserted.
# As root with dnsmasq, both VMMs' guests also sit on a bridge in a private lab namespace and the
# largest gap a TCP client sees (one keep-alive connection, a request every 10 ms) and the pings
# lost (one every 10 ms) are reported.
set -euo pipefail  # no exec below: the EXIT trap takes the lab down
cd "$(dirname "$0")/../.."
if [[ $EUID -eq 0 ]] && command -v dnsmasq >/dev/null; then
	export TERN_LAB_NS=${TERN_LAB_NS:-ternmig$$}
	export BENCH_NS=$TERN_LAB_NS
	trap 'scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
	scripts/lab.sh up >/dev/null
fi
/usr/bin/python3 tests/bench/migrate.py "$@"
