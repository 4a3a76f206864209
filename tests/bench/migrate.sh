#!/usr/bin/env bash
# Migration benchmark: for idle guests of 128 MiB, 512 MiB and 2 GiB, the medians of N
# migrations (tern -> tern over tcp on loopback): total time, downtime, setup time, bytes sent,
# rounds; and the same for QEMU (Debian's qemu-system-x86, same guest booted via PVH) in the
# same run, with the ratios. Figures are printed, never asserted.
# With BENCH_NET=1 it also runs the guests on a bridge in a private namespace and reports the
# largest gap a TCP client sees (one keep-alive connection, a request every 10 ms).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/bench/migrate.py "$@"
