#!/bin/bash
# tests/bench/bench-vm.sh: `make bench-vm`, the benchmark on a kernel with
# kTLS: boots the current stock Debian kernel under qemu with the VM tier of
# tests/vm/ (fetch-kernels.sh, run-vm.sh) and runs bench.py inside it, so
# that ktlsctl's kernel record channel is measured against its user-space
# channel and the other TLS tools.
#
#   bench-vm.sh [BENCH.PY OPTIONS...]     (default: --size 64M --rounds 3)
#
# qemu emulates the CPU (TCG: this machine has no working KVM), which makes
# every figure slow and skewed, so only ratios are printed (bench.py
# --ratios-only): programs measured in the same run, against each other.
# `--json FILE` writes the guest's JSON report to FILE on this machine.
#
# Environment:
#   KTLSCTL            ktlsctl binary (default: ../../ktlsctl from here)
#   BENCH_TCPCOPY      tests/bench/tcpcopy (make bench-vm builds it)
#   BENCH_VM_KERNEL    which cached kernel: unstable (default, the current
#                      one) or debian12 (6.1)
#   BENCH_VM_SMP       guest CPUs (default 2: one per endpoint)
#   BENCH_VM_MEM       guest memory in MiB (default 2048, or twice --size
#                      plus 1024 when that is more: the data file lives in
#                      the guest's tmpfs, which gets half of its memory)
#   BENCH_VM_TIMEOUT   limit for the whole guest run, seconds (default 3600)
#   KTLSCTL_VM_CACHE   kernel cache (fetch-kernels.sh; default ~/.cache/ktlsctl-vm)
#
# Exit status: 0 when the guest ran the benchmark and nothing FAILED; 1
# otherwise; 77 when the VM cannot run here (the reason is printed).
# (The whole script is read before it runs.)
{
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
vm=$here/../vm
KTLSCTL=${KTLSCTL:-$here/../../ktlsctl}
label=${BENCH_VM_KERNEL:-unstable}

say() { echo "bench-vm: $*"; }
cannot() { say "cannot run: $*"; exit 77; }

[[ -x $KTLSCTL ]] || { say "ktlsctl binary $KTLSCTL not found: build it first"; exit 1; }
KTLSCTL=$(cd "$(dirname "$KTLSCTL")" && pwd)/$(basename "$KTLSCTL")
tcpcopy=${BENCH_TCPCOPY:-$here/tcpcopy}
[[ -x $tcpcopy ]] || tcpcopy=

# Arguments for bench.py; --json FILE is written on this side.
args=() json=
while [[ $# -gt 0 ]]; do
	case $1 in
	--json) [[ $# -ge 2 ]] || { say "--json needs a file name"; exit 2; }
		json=$2; shift 2 ;;
	--json=*) json=${1#--json=}; shift ;;
	*) args+=("$1"); shift ;;
	esac
done
# Emulated: ratios only, and generous per-transfer timeouts.
args+=(--ratios-only --timeout-scale 8 --no-install)
case " ${args[*]} " in
*" --size "*|*" --size="*) ;;
*) args+=(--size 64M) ;;
esac
case " ${args[*]} " in
*" --gnutls-size "*|*" --gnutls-size="*) ;;
*) args+=(--gnutls-size 4M) ;;
esac

# The --size given to bench.py, in MiB (K, M, G: binary; bare: bytes).
size_mib() {
	local i v
	for ((i = 0; i < ${#args[@]}; i++)); do
		case ${args[i]} in
		--size) v=${args[i + 1]:-} ;;
		--size=*) v=${args[i]#--size=} ;;
		esac
	done
	[[ ${v:-} =~ ^([0-9]+)([KkMmGg]?)$ ]] || { echo 0; return; }
	case ${BASH_REMATCH[2],,} in
	g) echo $((BASH_REMATCH[1] * 1024)) ;;
	m) echo "${BASH_REMATCH[1]}" ;;
	k) echo $((BASH_REMATCH[1] / 1024)) ;;
	*) echo $((BASH_REMATCH[1] >> 20)) ;;
	esac
}
mem=$(( $(size_mib) * 2 + 1024 ))
(( mem > 2048 )) || mem=2048
mem=${BENCH_VM_MEM:-$mem}

[[ $(uname -m) == x86_64 ]] || cannot "the VM tier boots x86_64 kernels; this is $(uname -m)"
for tool in qemu-system-x86_64 modprobe depmod cpio gzip xz timeout; do
	command -v "$tool" >/dev/null || cannot "'$tool' not found (apt-get install qemu-system-x86 kmod cpio xz-utils)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/ktlsctl-bench-vm.XXXXXX")
vmpid=
# Stopping the guest: run-vm.sh runs qemu under timeout(1), which puts
# itself in a process group of its own and passes SIGTERM on to qemu.  So
# run-vm.sh's children (that timeout) are signalled first, by pid, then
# run-vm.sh's own process group (it runs under setsid).
cleanup() {
	if [[ -n $vmpid ]]; then
		local kids
		kids=$(ps -o pid= --ppid "$vmpid" 2>/dev/null)
		[[ -z $kids ]] || kill -TERM $kids 2>/dev/null
		kill -TERM -- "-$vmpid" 2>/dev/null
		wait "$vmpid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "fetching the $label kernel (cache: ${KTLSCTL_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktlsctl-vm})"
if ! "$vm/fetch-kernels.sh" "$label" > "$work/kernels" 2> "$work/fetch.err"; then
	cat "$work/fetch.err"
	cannot "the $label kernel could not be fetched"
fi
read -r _ _ kdir kver _ < "$work/kernels"
[[ -n ${kdir:-} ]] || cannot "fetch-kernels.sh named no kernel"

say "booting $kver under qemu (TCG, ${BENCH_VM_SMP:-2} CPUs, $mem MiB): bench.py ${args[*]}"
say "emulated CPUs: only ratios between programs of the same run mean anything"
# run-vm.sh puts its run directory (and the live console log) in $work.
VM_RUNDIR=$work \
VM_SMP=${BENCH_VM_SMP:-2} \
VM_MEM=$mem \
VM_TIMEOUT=${BENCH_VM_TIMEOUT:-3600} \
VM_LOG=$work/console.txt \
VM_ENV_BENCH_PY=$here/bench.py \
VM_ENV_BENCH_ARGS=$(printf '%q ' "${args[@]}") \
VM_ENV_BENCH_TCPCOPY=$tcpcopy \
KTLSCTL=$KTLSCTL \
	setsid "$vm/run-vm.sh" "$kdir" "$here/vm-guest.sh" > "$work/run.out" 2> "$work/run.err" &
vmpid=$!

# Show the benchmark's lines as the guest prints them.
shown=0
show_new() {
	local log
	log=$(ls "$work"/ktlsctl-vm.*/console.log 2>/dev/null | head -n1)
	[[ -n $log ]] || return 0
	local lines
	lines=$(tr -d '\r' < "$log" | grep -a '^VMBENCH ' | sed 's/^VMBENCH //')
	local n
	n=$(printf '%s' "$lines" | grep -c '' || true)
	if (( n > shown )); then
		printf '%s\n' "$lines" | tail -n $((n - shown))
		shown=$n
	fi
}
while kill -0 "$vmpid" 2>/dev/null; do
	show_new
	sleep 2
done
wait "$vmpid"
rc=$?
vmpid=

# The rest, from the whole console log.
if [[ -f $work/console.txt ]]; then
	lines=$(grep -a '^VMBENCH ' "$work/console.txt" | sed 's/^VMBENCH //')
	n=$(printf '%s' "$lines" | grep -c '' || true)
	(( n > shown )) && printf '%s\n' "$lines" | tail -n $((n - shown))
	if [[ -n $json ]]; then
		if grep -aq '^VMJSON ' "$work/console.txt"; then
			grep -a '^VMJSON ' "$work/console.txt" | sed 's/^VMJSON //' > "$json"
			say "JSON report written to $json"
		else
			say "the guest wrote no JSON report"
		fi
	fi
fi
grep -E '^VMINFO ' "$work/run.out" | sed 's/^VMINFO /bench-vm: guest: /'
if [[ $rc -ne 0 ]]; then
	say "FAILED: $(grep -m1 'FAILED: ' "$work/run.err" | sed 's/.*FAILED: //')"
	# run-vm.sh's verdict and, on failure, the guest's console log (without
	# the benchmark lines already shown).
	grep -av '^VMBENCH \|^VMJSON ' "$work/run.err" | tail -n 60
	exit 1
fi
say "done: $(grep -m1 -o 'kernel [^:]*: [0-9]* passed.*' "$work/run.err")"
exit 0
}
