#!/bin/bash
# tests/vm/check-vm.sh: the real-kernel tier of `make check` and
# `make check-vm`: fetch (or reuse) the cached Debian kernels, boot each
# under qemu and run tests/vm/scenarios.sh inside it against the ktlsctl
# binary of this build (shared/research/vm-testing.md).
#
# Exit 0 when every kernel booted and every scenario passed; 1 on any
# failure; 77 (skip) when qemu or the kernels cannot be had, except under
# CI=true or KTLSCTL_VM_REQUIRED=1, where that is a failure: in CI the
# kernel path must really run.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export KTLSCTL=${KTLSCTL:-$here/../../ktlsctl}
cache=${KTLSCTL_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktlsctl-vm}
required=0
[[ ${CI:-} == true || ${KTLSCTL_VM_REQUIRED:-} == 1 ]] && required=1

unavailable() {
	echo "check-vm: *** REAL-KERNEL TIER NOT RUN: $* ***" >&2
	if (( required )); then
		echo "check-vm: CI=true or KTLSCTL_VM_REQUIRED=1: that is a failure" >&2
		echo "0 passed, 1 failed"
		exit 1
	fi
	echo "check-vm: skipped (set KTLSCTL_VM_REQUIRED=1 to make this an error)" >&2
	exit 77
}

command -v qemu-system-x86_64 >/dev/null ||
	unavailable "qemu-system-x86_64 is missing (apt-get install qemu-system-x86 busybox-static kmod cpio)"
[[ -x /bin/busybox || -x /usr/bin/busybox ]] || unavailable "busybox-static is missing"
[[ -x $KTLSCTL ]] || unavailable "no ktlsctl binary at $KTLSCTL (build first)"
"$here/fetch-kernels.sh" || unavailable "the kernels could not be fetched (see above)"

passed=0 failed=0
summary=()
for label in debian12 unstable; do
	kdir=$cache/$label
	version=$(. "$kdir/kernel.env" 2>/dev/null; echo "${KVER:-?} (${PKGVERSION:-?})")
	echo "check-vm: === booting $label kernel $version ==="
	out=$(mktemp)
	start=$SECONDS
	"$here/run-vm.sh" "$kdir" "$here/scenarios.sh" | tee "$out"
	rc=${PIPESTATUS[0]}
	p=$(grep -c '^VMRESULT PASS' "$out")
	f=$(grep -c '^VMRESULT FAIL' "$out")
	s=$(grep -c '^VMRESULT SKIP' "$out")
	if (( rc != 0 && f == 0 )); then
		f=1   # the guest did not finish: a hang, a panic or no result
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	summary+=("$label ($version): $p passed, $f failed, $s skipped in $((SECONDS - start)) s")
	rm -f "$out"
done
echo "check-vm: --- summary ---"
printf 'check-vm: %s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
(( failed == 0 && passed > 0 ))
