#!/bin/bash
# tests/vm/check-vm.sh: the real-kernel tier of `make check` and all of
# `make check-vm`.
#
# Boots stock Debian kernels under qemu (TCG) and runs the integration
# suites inside them on the kernel channel (tests/vm/guest.py), so that the
# kernel record channel, which this machine's own kernel may not have, runs
# on:
#
#   debian12   Debian 12's 6.1 kernel: kTLS without TLS 1.3 rekey
#   unstable   Debian unstable's current kernel: kTLS with rekey (>= 6.14)
#
# Steps: fetch-kernels.sh (cached outside the source tree; no network once
# cached), then run-vm.sh for each kernel (two at once on two CPUs), then a
# summary: which kernels booted, with their versions, every suite case's
# result per kernel (one VMRESULT line each, each counted), the cases that
# did not pass everywhere, and a last line "N passed, N failed".
#
# Exit status: 0 all passed; 1 something failed; 77 (automake's SKIP) when
# qemu, the tools or the kernels cannot be had, said loudly, except under
# CI=true or KTLSCTL_VM_REQUIRED=1, where that is a failure (1): in CI the
# kernel path must really run.
#
# Environment:
#   KTLSCTL               the binary to test (default: ../../ktlsctl from here)
#   KTLSCTL_VM_CACHE      kernel cache (default ~/.cache/ktlsctl-vm)
#   KTLSCTL_VM_KERNELS    which kernels (default "debian12 unstable")
#   KTLSCTL_VM_JOBS       VMs at once (default 2 with two CPUs or more, else 1)
#   KTLSCTL_VM_ONLY       run only the suites whose file name contains this
#                         (several: '|' between them)
#   KTLSCTL_VM_SUITE_ONLY in the suites, only the cases whose name contains
#                         this (several: '|' between them)
#   KTLSCTL_VM_DATA_SCALE the suites' KTLSCTL_TEST_DATA_SCALE (guest.py's
#                         default: 0.125)
#   KTLSCTL_VM_TIMEOUT_SCALE  multiply every timeout (default 1, 2 for a
#                         sanitizer build)
#   KTLSCTL_VM_LOGDIR     keep each kernel's console log and results there
#   CI, KTLSCTL_VM_REQUIRED   "cannot run" is a failure instead of a skip
#
# (The whole script is read before it runs: replacing it on disk while it
# runs cannot change what this run does.)
{
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KTLSCTL=${KTLSCTL:-$here/../../ktlsctl}
read -r -a kernels <<< "${KTLSCTL_VM_KERNELS:-debian12 unstable}"
required=0
[[ ${CI:-} == true || ${KTLSCTL_VM_REQUIRED:-0} == 1 ]] && required=1

say() { echo "check-vm: $*"; }

# Cannot run here: skip loudly, or fail where the tier is required.
cannot() {
	echo
	echo "**********************************************************************"
	echo "*** check-vm: THE REAL-KERNEL (qemu) TIER DID NOT RUN"
	echo "*** reason: $*"
	if [[ $required == 1 ]]; then
		echo "*** CI=true or KTLSCTL_VM_REQUIRED=1: this is a FAILURE"
		echo "**********************************************************************"
		echo "0 passed, 1 failed"
		exit 1
	fi
	echo "*** the kernel record channel was NOT tested (exit 77: SKIP)"
	echo "*** needs: qemu-system-x86 busybox-static kmod cpio xz-utils"
	echo "***        gnutls-bin openssl iproute2 python3, and the network once"
	echo "***        to fetch the kernels (./bootstrap installs the packages);"
	echo "***        KTLSCTL_VM_REQUIRED=1 makes this fatal"
	echo "**********************************************************************"
	exit 77
}

# ------------------------------------------------------------ can we run?

if [[ ! -x $KTLSCTL ]]; then
	say "ktlsctl binary $KTLSCTL not found: build it first"
	echo "0 passed, 1 failed"
	exit 1
fi
KTLSCTL=$(cd "$(dirname "$KTLSCTL")" && pwd)/$(basename "$KTLSCTL")

case $(uname -m) in
x86_64) ;;
*) cannot "this tier boots x86_64 kernels; this machine is $(uname -m)" ;;
esac
missing=()
for tool in qemu-system-x86_64 modprobe depmod cpio gzip xz timeout \
	    gnutls-serv gnutls-cli certtool openssl ss python3 apt-get dpkg; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
static_busybox=0
for bb in "$(command -v busybox || true)" /bin/busybox /usr/bin/busybox; do
	# (ldd fails on a static executable)
	[[ -n $bb && -x $bb ]] && ! ldd "$bb" >/dev/null 2>&1 && static_busybox=1
done
[[ $static_busybox == 1 ]] || missing+=("a static busybox (busybox-static)")
[[ ${#missing[@]} -eq 0 ]] || cannot "missing: ${missing[*]}"

say "fetching kernels (cache: ${KTLSCTL_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktlsctl-vm})"
work=$(mktemp -d "${TMPDIR:-/tmp}/ktlsctl-check-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
if ! "$here/fetch-kernels.sh" "${kernels[@]}" > "$work/kernels" 2> "$work/fetch.err"; then
	cat "$work/fetch.err"
	cannot "the Debian kernels could not be fetched (see above)"
fi
sed 's/^/check-vm: /' "$work/fetch.err"

declare -A kdir kver kpkg kpkgver
while read -r _ label dir ver pkg pkgver; do
	kdir[$label]=$dir
	kver[$label]=$ver
	kpkg[$label]=$pkg
	kpkgver[$label]=$pkgver
done < "$work/kernels"

# ------------------------------------------------------------------ run

scale=${KTLSCTL_VM_TIMEOUT_SCALE:-}
if [[ -z $scale ]]; then
	scale=1
	ldd "$KTLSCTL" 2>/dev/null | grep -qE 'libasan|libubsan|libtsan' && scale=2
fi
jobs=${KTLSCTL_VM_JOBS:-}
if [[ -z $jobs ]]; then
	jobs=1
	(( $(nproc 2>/dev/null || echo 1) >= 2 )) && jobs=2
fi
logdir=${KTLSCTL_VM_LOGDIR:-}
[[ -z $logdir ]] || mkdir -p "$logdir"

say "ktlsctl: $KTLSCTL ($("$KTLSCTL" --version 2>&1 | head -n1)); timeout scale $scale; $jobs VM(s) at a time"

expect_rekey() {
	case $1 in
	debian12) echo no ;;
	unstable) echo yes ;;
	esac
}

run_kernel() {
	local label=$1 t0 rc=0
	t0=$(date +%s)
	VM_ENV_EXPECT_REKEY=$(expect_rekey "$label") \
	VM_ENV_TIMEOUT_SCALE=$scale \
	VM_ENV_ONLY=${KTLSCTL_VM_ONLY:-} VM_ENV_SUITE_ONLY=${KTLSCTL_VM_SUITE_ONLY:-} \
	VM_ENV_DATA_SCALE=${KTLSCTL_VM_DATA_SCALE:-} \
	VM_TIMEOUT=$(( 2400 * scale )) \
	VM_LOG="$work/$label.console" \
	KTLSCTL=$KTLSCTL \
		"$here/run-vm.sh" "${kdir[$label]}" "$here/guest.py" \
		> "$work/$label.out" 2> "$work/$label.err" || rc=$?
	echo "$rc $(( $(date +%s) - t0 ))" > "$work/$label.status"
}

t_start=$(date +%s)
running=0
for label in "${kernels[@]}"; do
	if [[ -z ${kdir[$label]:-} ]]; then
		say "no kernel '$label' in the cache"
		continue
	fi
	say "booting $label: ${kver[$label]} (${kpkg[$label]} ${kpkgver[$label]})"
	run_kernel "$label" &
	running=$((running + 1))
	if (( running >= jobs )); then
		wait -n
		running=$((running - 1))
	fi
done
wait

# -------------------------------------------------------------- summary

passed=0
failed=0
declare -A result=() kpass=() kfail=()
names=()
for label in "${kernels[@]}"; do
	if [[ ! -f $work/$label.status ]]; then
		failed=$((failed + 1))
		echo "VMRESULT FAIL $label: not run"
		continue
	fi
	read -r rc secs < "$work/$label.status"
	booted=$(grep -m1 -o 'VMINIT kernel .*' "$work/$label.console" 2>/dev/null | sed 's/^VMINIT kernel //')
	echo
	echo "==== $label: ${kver[$label]} (${kpkg[$label]} ${kpkgver[$label]}) ===="
	if [[ -n $booted ]]; then
		echo "booted: $booted; the run took ${secs}s"
	else
		echo "DID NOT BOOT (the run took ${secs}s)"
	fi
	grep -E '^(VMINFO|VMRESULT) ' "$work/$label.out"
	# run-vm's verdict, and on failure the guest's whole console log
	cat "$work/$label.err"
	kpass[$label]=0
	kfail[$label]=0
	# "VMRESULT PASS|FAIL suite: case (1.2s)", or "VMRESULT FAIL name: reason"
	while IFS= read -r line; do
		status=${line#VMRESULT }
		status=${status%% *}
		name=${line#VMRESULT "$status" }
		if [[ $name =~ ^(.*)\ \([0-9.]+s\)$ ]]; then
			name=${BASH_REMATCH[1]}
		elif [[ $status != PASS ]]; then
			name=${name%%: *}
		fi
		[[ -n ${result[$name]+x} ]] || names+=("$name")
		result[$name]+="$label=$status "
		case $status in
		PASS) kpass[$label]=$((kpass[$label] + 1)) ;;
		*) kfail[$label]=$((kfail[$label] + 1)) ;;
		esac
	done < <(grep -E '^VMRESULT (PASS|FAIL|SKIP) ' "$work/$label.out")
	# The run itself: booted, ran the suites to their end, powered off, no
	# kernel bug.  (Failed cases are already counted above.)
	verdict=$(grep -m1 'FAILED: ' "$work/$label.err" | sed 's/.*FAILED: //')
	if [[ $rc -eq 0 ]]; then
		kpass[$label]=$((kpass[$label] + 1))
		echo "VMRESULT PASS $label: booted ${kver[$label]}, ran every suite, powered off"
	elif [[ $verdict =~ ^[0-9]+\ case\(s\)\ failed$ ]]; then
		:   # only failed cases, counted above
	else
		kfail[$label]=$((kfail[$label] + 1))
		echo "VMRESULT FAIL $label: the VM run failed: ${verdict:-run-vm.sh exited with status $rc}"
	fi
	passed=$((passed + kpass[$label]))
	failed=$((failed + kfail[$label]))
	if [[ -n $logdir ]]; then
		cp "$work/$label.console" "$logdir/$label.console.log" 2>/dev/null
		cp "$work/$label.out" "$logdir/$label.out"
	fi
done

echo
echo "==== check-vm summary: ktlsctl $("$KTLSCTL" --version 2>&1 | head -n1 | sed 's/^ktlsctl //'), $(( $(date +%s) - t_start ))s ===="
for label in "${kernels[@]}"; do
	[[ -f $work/$label.status ]] || { echo "kernel $label: not run"; continue; }
	read -r rc secs < "$work/$label.status"
	b=$(grep -m1 -o 'VMINIT kernel .*' "$work/$label.console" 2>/dev/null | awk '{ print $3 }')
	echo "kernel $label: ${kver[$label]} (${kpkg[$label]} ${kpkgver[$label]}):" \
	     "$([[ -n $b ]] && echo "booted $b" || echo "DID NOT BOOT"), ${secs}s, run-vm status $rc:" \
	     "${kpass[$label]:-0} passed, ${kfail[$label]:-0} failed"
done
# Every case that did not pass on every kernel that ran it ("-": not run
# there, e.g. a case for kernels that can rekey).
everywhere=0 bad=()
for name in "${names[@]}"; do
	if [[ ${result[$name]} == *=FAIL* || ${result[$name]} == *=SKIP* ]]; then
		bad+=("$name")
	else
		everywhere=$((everywhere + 1))
	fi
done
echo "$everywhere case(s) passed on every kernel that ran them"
if (( ${#bad[@]} > 0 )); then
	printf '%-10s' "${kernels[@]}"
	echo " case"
	for name in "${bad[@]}"; do
		for label in "${kernels[@]}"; do
			st=$(grep -oE "(^| )$label=[A-Z]+" <<< "${result[$name]}" | sed 's/.*=//')
			printf '%-10s' "${st:--}"
		done
		echo " $name"
	done
fi
if (( ${#names[@]} == 0 && failed == 0 )); then
	failed=1
	echo "no case reported a result"
fi
echo "$passed passed, $failed failed"
(( failed == 0 ))
exit
}
