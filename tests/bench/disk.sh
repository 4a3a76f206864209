#!/usr/bin/env bash
# Disk benchmark: the test guest reads, then writes, 32 MiB of a raw image through virtio-blk
# (64 KiB requests, one at a time: the device's latency as much as its throughput); tern where
# /dev/kvm can run it, and QEMU (Debian's qemu-system-x86, microvm, the same guest via PVH and
# the same image) in the same run, with KVM when it can and under TCG otherwise (said in its
# row). The image lives in the host's page cache, so this measures the VMMs, not the disk.
# Figures are printed, never asserted.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/bench/disk.py
