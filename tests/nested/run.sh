#!/bin/bash
# Runs a command in the nested test host (build.sh): Debian's kernel under QEMU TCG with an
# emulated AMD-V CPU and kvm_amd loaded, the outer machine's root shared over 9p (cached),
# the command run in this checkout with fresh /tmp and /run. Its output is the console's; its
# exit status is the command's.
#
# usage: tests/nested/run.sh BUILD_DIR COMMAND...     (NESTED_TIMEOUT: seconds, default 1500)
set -Eeuo pipefail
OUT=$(cd "${1:?usage: run.sh BUILD_DIR COMMAND...}" && pwd)
shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[[ $OUT/ == "$ROOT"/* && $ROOT != *[[:space:],]* ]] ||
	{ echo "nested: $OUT must lie in the checkout $ROOT, whose path has no spaces or commas" >&2; exit 2; }

tty=0
[[ -t 1 ]] && tty=1
{
	# The nested host exists to have KVM: a test that finds none there must fail, not skip.
	echo "export TERN_REQUIRE_KVM=1 TERM=${TERM:-dumb}"
	((tty)) || echo "export PY_COLORS=0"
	# Its KVM runs stock Linux too: the kernel it boots itself, as a guest of tern.
	printf 'export TERN_STOCK_LINUX=%q\n' "$OUT"
	# Its KVM's guests cannot hit breakpoints: QEMU's TCG AMD-V neither intercepts their int3
	# nor arms the debug registers for them (tests/integration/test_gdb.py).
	echo "export TERN_NESTED_HOST=1"
	# The benchmarks' knobs (tests/bench) and tern's own variables go along.
	for v in N SIZES $(compgen -v TERN_); do
		[[ -v $v ]] && printf 'export %s=%q\n' "$v" "${!v}"
	done
	printf 'cd %q && exec' "$ROOT"
	printf ' %q' "$@"
	echo
} >"$OUT/cmd.sh"
# QEMU's emulated AMD-V now and then wedges the nested host (its CPUs busy, nothing moves, the
# kernel reports soft lockups): seen in about every other suite run with two CPUs and
# multi-threaded TCG, not yet with one (and the suite takes as long). So one CPU (NESTED_CPUS);
# and a heartbeat from /init every 5 s: when it stops for a minute the host is restarted and the
# command run again, once.
watch_heartbeat() {
	local since=$SECONDS
	while sleep 5; do
		[[ -f $OUT/heartbeat ]] && since=$SECONDS && rm -f "$OUT/heartbeat"
		if ((SECONDS - since > 60)); then
			touch "$OUT/wedged"
			kill "$(cat "$OUT/qemu.pid")" 2>/dev/null
			return
		fi
	done
}

for try in 1 2; do
	rm -f "$OUT/rc" "$OUT/wedged" "$OUT/heartbeat" "$OUT/qemu.pid"
	watch_heartbeat &
	watcher=$!
	# The console is the command's terminal: -serial stdio, no QEMU mux, so Ctrl-A reaches it.
	# --foreground: QEMU stays in the terminal's process group, or reading it would stop it.
	timeout --foreground "${NESTED_TIMEOUT:-1500}" qemu-system-x86_64 -accel tcg -cpu max \
		-machine q35 -smp "${NESTED_CPUS:-1}" -m 4G -display none -monitor none -serial stdio -no-reboot \
		-nic none -pidfile "$OUT/qemu.pid" -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.gz" \
		-append "console=ttyS0 loglevel=3 panic=-1 tern.root=$ROOT tern.dir=$OUT" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,id=r0,multidevs=remap \
		-virtfs "local,path=$ROOT,mount_tag=checkout,security_model=passthrough,id=r1,multidevs=remap" ||
		true
	kill "$watcher" 2>/dev/null || true
	wait "$watcher" 2>/dev/null || true
	[[ -f $OUT/wedged && $try == 1 ]] || break
	echo "nested: the nested host stopped making progress (emulated AMD-V); running it again" >&2
done
[[ ! -f $OUT/wedged ]] || { echo "nested: the nested host wedged twice" >&2; exit 1; }
[[ -f $OUT/rc ]] || { echo "nested: the nested host ended without the command's exit status" >&2; exit 1; }
exit "$(cat "$OUT/rc")"
