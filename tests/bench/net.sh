#!/usr/bin/env bash
# Network benchmark: the test guest on a bridge in a private lab namespace (scripts/lab.sh),
# measured from the bridge's side: TCP echo throughput on port 7 (host -> guest and the same
# bytes guest -> host, concurrently) and ping round trips. tern runs where /dev/kvm can; QEMU
# (Debian's qemu-system-x86, same guest via PVH, -netdev tap) runs in the same run, with KVM
# when it can and under TCG otherwise (said in its row). Figures are printed, never asserted.
set -euo pipefail  # no exec below: the EXIT trap takes the lab down
cd "$(dirname "$0")/../.."
export TERN_LAB_NS=${TERN_LAB_NS:-ternbench$$}
trap 'scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
scripts/lab.sh up >/dev/null
/usr/bin/python3 tests/bench/net.py "$TERN_LAB_NS"
