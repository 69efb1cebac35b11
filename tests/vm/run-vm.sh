#!/bin/bash
# tests/vm/run-vm.sh: boot one cached Debian kernel under qemu (TCG) and run a
# program inside it.
#
# Usage: run-vm.sh KERNEL_DIR GUEST_PROGRAM
#
#   KERNEL_DIR       a kernel fetched by fetch-kernels.sh (CACHE/LABEL, with
#                    kernel.env and root/).
#   GUEST_PROGRAM    a Python program (*.py: guest.py, the suites) or a bash
#                    script on this machine; it runs inside the guest,
#                    as root, chrooted into this machine's root file system
#                    (shared read-only over 9p; the host's /tmp stays
#                    visible), with a tmpfs on /run for scratch space
#                    (TMPDIR=/run/tmp, HOME=/run/home, XDG_RUNTIME_DIR=
#                    /run/user/0), loopback up and the kTLS modules loaded,
#                    its variables from the VM_ENV_* below.  It reports
#                    with lines "VMRESULT PASS name" / "VMRESULT FAIL name"
#                    (with a reason after ": ", or a time "(1.2s)" and
#                    VMLOG lines), and may print "VMINFO ..." lines.
#
# The initramfs holds only busybox (static), an init script and the modules
# kTLS, sock_diag and 9p need (with their dependencies, found with modprobe
# --show-depends on the unpacked kernel).  Everything else, the program,
# ktlsctl and the TLS peers included, comes from the host root.
#
# Environment:
#   KTLSCTL            ktlsctl binary (default: ../../ktlsctl from here)
#   VM_TIMEOUT         hard limit for the whole boot, seconds (default 600)
#   VM_MEM, VM_SMP     guest memory (MiB, default 1024) and CPUs (default 1)
#   VM_CPU             qemu -cpu model (default max: aesni_intel needs it)
#   VM_RUNDIR          where the run directory goes (default /tmp)
#   VM_LOG             keep the whole console log in this file
#   VM_KEEP=1          keep the run directory (its path is printed)
#   VM_ENV_*           passed to the program without the VM_ENV_ prefix
#                      (e.g. VM_ENV_ONLY=rekey -> ONLY=rekey)
#
# Output: the guest's VMINFO/VMRESULT lines on stdout, then a verdict.
# Exit 0 when the guest ran the program to its end, every result is PASS
# and at least one was reported; 1 otherwise (the guest log is printed);
# 2 on a usage error.
# (The whole script is read before it runs: replacing it on disk while it
# runs cannot change what this run does.)
{
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

usage() { echo "usage: run-vm.sh KERNEL_DIR GUEST_PROGRAM" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
kdir=$(cd "$1" && pwd) || usage
program=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
[[ -f $program ]] || { echo "run-vm: no guest program $2" >&2; exit 2; }
[[ -f $kdir/kernel.env ]] || { echo "run-vm: $kdir has no kernel.env (run fetch-kernels.sh)" >&2; exit 2; }
# shellcheck disable=SC1091
. "$kdir/kernel.env"
root=$kdir/root

KTLSCTL=${KTLSCTL:-$here/../../ktlsctl}
KTLSCTL=$(cd "$(dirname "$KTLSCTL")" && pwd)/$(basename "$KTLSCTL")
[[ -x $KTLSCTL ]] || { echo "run-vm: ktlsctl binary $KTLSCTL not found" >&2; exit 2; }
VM_TIMEOUT=${VM_TIMEOUT:-600}
VM_MEM=${VM_MEM:-1024}
VM_SMP=${VM_SMP:-1}

fail() { echo "run-vm[$LABEL]: $*" >&2; exit 1; }

for tool in qemu-system-x86_64 modprobe depmod cpio gzip xz timeout; do
	command -v "$tool" >/dev/null || fail "'$tool' not found"
done
# The guest's init and shell: a static busybox (it runs before anything
# else is there).
busybox=
for bb in "$(command -v busybox || true)" /bin/busybox /usr/bin/busybox; do
	# (ldd fails on a static executable)
	if [[ -n $bb && -x $bb ]] && ! ldd "$bb" >/dev/null 2>&1; then
		busybox=$bb
		break
	fi
done
[[ -n $busybox ]] || fail "no static busybox found (install busybox-static)"

# The run directory lives on the host (default /tmp): the guest sees it over
# 9p (read-only) at the same path.  Not under /run, which the guest hides.
run=$(mktemp -d "${VM_RUNDIR:-/tmp}/ktlsctl-vm.XXXXXX")
chmod 755 "$run"
cleanup() {
	if [[ ${VM_KEEP:-0} == 1 ]]; then
		echo "run-vm[$LABEL]: kept $run" >&2
	else
		rm -rf "$run"
	fi
}
trap cleanup EXIT

# ------------------------------------------------------------ initramfs

ird=$run/initramfs
mkdir -p "$ird"/{bin,sbin,dev,proc,sys,host,lib/modules/"$KVER"}
cp "$busybox" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
ln -s ../bin/busybox "$ird/sbin/modprobe"

# Modules, by what kTLS and its tests need; names a kernel does not have
# (renamed, built in) are skipped: the tests say what is missing.
want_modules=(
	virtio_pci 9pnet_virtio 9p                          # the host root
	tls                                                 # kTLS itself
	gcm ccm ctr ghash-generic gf128mul cryptd crypto_simd aesni_intel
	chacha20poly1305 chacha20_x86_64 poly1305_x86_64 chacha_generic chacha
	libpoly1305 libchacha20poly1305
	crypto-aes crypto-ghash crypto-chacha20 crypto-poly1305  # by alias: names move
	inet_diag tcp_diag                                  # ss -tie (tcp-ulp-tls)
)
: > "$ird/modules.load"
declare -A seen=()
for m in "${want_modules[@]}"; do
	deps=$(modprobe -d "$root" -S "$KVER" --show-depends "$m" 2>/dev/null) || continue
	while read -r verb path _; do
		[[ $verb == insmod ]] || continue
		[[ -z ${seen[$path]:-} ]] || continue
		[[ $path != */padlock-* ]] || continue   # VIA CPUs only
		seen[$path]=1
		rel=${path#"$root/"}
		rel=${rel#lib/modules/"$KVER"/}
		rel=${rel#usr/lib/modules/"$KVER"/}
		out=$ird/lib/modules/$KVER/${rel%.xz}
		out=${out%.zst}
		mkdir -p "$(dirname "$out")"
		case $path in
		*.xz) xz -dc "$path" > "$out" ;;
		*.zst) command -v zstd >/dev/null || fail "zstd is needed for $path (install zstd)"
		       zstd -qdc "$path" > "$out" ;;
		*) cp "$path" "$out" ;;
		esac
		echo "/lib/modules/$KVER/${out#"$ird/lib/modules/$KVER/"}" >> "$ird/modules.load"
	done <<< "$deps"
done
# modules.builtin/order let busybox modprobe answer the kernel's own
# requests (request_module) for anything already loaded or built in.
for f in modules.builtin modules.order; do
	[[ -f $root/$MODDIR/$f ]] && cp "$root/$MODDIR/$f" "$ird/lib/modules/$KVER/"
done
depmod -b "$ird" "$KVER" 2>/dev/null || fail "depmod on the initramfs failed"

# What the program gets: a bash-sourced env file in the run directory.
{
	printf 'export VM_LABEL=%q VM_KVER=%q VM_PACKAGE=%q VM_PKGVERSION=%q\n' \
		"$LABEL" "$KVER" "$PACKAGE" "$PKGVERSION"
	printf 'export KTLSCTL=%q VM_PROGRAM=%q VM_RUN=%q VM_TESTS_DIR=%q\n' \
		"$KTLSCTL" "$program" "$run" "$here"
	for v in $(compgen -e | grep '^VM_ENV_' || true); do
		printf 'export %s=%q\n' "${v#VM_ENV_}" "${!v}"
	done
	for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
		[[ -z ${!v:-} ]] || printf 'export %s=%q\n' "$v" "${!v}"
	done
} > "$run/guest.env"

cat > "$ird/init" <<'EOF'
#!/bin/sh
# Guest init: modules, the host root over 9p, the program, power off.
export PATH=/bin:/sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
exec >/dev/console 2>&1 </dev/null
echo   # the firmware leaves the console mid-line
say() { echo "VMINIT $*"; }
finish() { echo "VMDONE $1"; sync; poweroff -f; sleep 5; echo o > /proc/sysrq-trigger; }

for m in $(cat /modules.load); do
	# (a module the kernel already loaded on its own says "File exists")
	out=$(insmod "$m" 2>&1) || case $out in *"File exists"*) ;; *) say "insmod $m: $out" ;; esac
done
echo /sbin/modprobe > /proc/sys/kernel/modprobe
run=$(sed -n 's/.*ktlsvm\.run=\([^ ]*\).*/\1/p' /proc/cmdline)

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host ||
	{ say "cannot mount the host root over 9p"; finish 1; }
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm 2>/dev/null
mount -t devpts devpts /host/dev/pts
mount -t tmpfs shm /host/dev/shm
# Scratch space: a tmpfs on /run.  The host's /tmp stays visible (read
# only): the run directory and perhaps ktlsctl itself live there.
mount -t tmpfs -o mode=755 run /host/run
mkdir -p /host/run/tmp /host/run/home /host/run/user/0
chmod 1777 /host/run/tmp
chmod 700 /host/run/user/0
ip link set lo up
hostname ktlsvm
say "kernel $(uname -r) up $(cut -d' ' -f1 /proc/uptime)s"

chroot /host /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/run/home TMPDIR=/run/tmp XDG_RUNTIME_DIR=/run/user/0 TERM=dumb LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
	VM_RUN_ENV="$run/guest.env" \
	/bin/bash -c '. "$VM_RUN_ENV" && cd /run/tmp &&
		case $VM_PROGRAM in *.py) exec /usr/bin/python3 "$VM_PROGRAM" ;; esac &&
		exec /bin/bash "$VM_PROGRAM"'
finish $?
EOF
chmod 755 "$ird/init"
(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$run/initrd.gz" ||
	fail "cannot build the initramfs"

# ------------------------------------------------------------------ boot

log=$run/console.log
echo "run-vm[$LABEL]: booting $KVER ($PACKAGE $PKGVERSION), initramfs $(du -k "$run/initrd.gz" | cut -f1) KiB, $(wc -l < "$ird/modules.load") modules, limit ${VM_TIMEOUT}s" >&2
t0=$(date +%s)
qrc=0
timeout -k 10 "$VM_TIMEOUT" qemu-system-x86_64 \
	-accel tcg -cpu "${VM_CPU:-max}" -m "$VM_MEM" -smp "$VM_SMP" \
	-nographic -no-reboot -nic none -monitor none -serial stdio \
	-kernel "$root/$VMLINUZ" -initrd "$run/initrd.gz" \
	-append "console=ttyS0 panic=-1 oops=panic quiet loglevel=4 rdinit=/init ktlsvm.run=$run" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	</dev/null >"$log" 2>&1 || qrc=$?
t1=$(date +%s)
# (the firmware's terminal escapes stripped, so guest lines start lines)
tr -d '\r' < "$log" | sed -E 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1b[a-z]//g' > "$log.txt"
[[ -z ${VM_LOG:-} ]] || cp "$log.txt" "$VM_LOG"

grep -E '^(VMINIT|VMINFO|VMRESULT) ' "$log.txt" || true

problems=()
if [[ $qrc -eq 124 || $qrc -eq 137 ]]; then
	problems+=("the guest hung: killed after ${VM_TIMEOUT}s")
elif [[ $qrc -ne 0 ]]; then
	problems+=("qemu exited with status $qrc")
fi
done_line=$(grep -E '^VMDONE ' "$log.txt" | tail -n1 || true)
if [[ -z $done_line ]]; then
	problems+=("the guest program did not run to its end (no VMDONE line)")
elif [[ $done_line != "VMDONE 0" ]]; then
	problems+=("the guest program exited with status ${done_line#VMDONE }")
fi
npass=$(grep -cE '^VMRESULT PASS ' "$log.txt" || true)
nfail=$(grep -cE '^VMRESULT FAIL ' "$log.txt" || true)
[[ $nfail -eq 0 ]] || problems+=("$nfail case(s) failed")
[[ $npass -gt 0 || $nfail -gt 0 ]] || problems+=("no case reported a result")
if grep -qE 'Kernel panic|BUG: |Oops: |general protection fault|Call Trace:' "$log.txt"; then
	problems+=("the kernel reported a bug (see the log)")
fi

echo "run-vm[$LABEL]: kernel $KVER: $npass passed, $nfail failed, $((t1 - t0))s" >&2
if [[ ${#problems[@]} -gt 0 ]]; then
	{
		joined=$(printf '%s; ' "${problems[@]}")
		echo "run-vm[$LABEL]: FAILED: ${joined%; }"
		echo "----- guest console log ($KVER) -----"
		cat "$log.txt"
		echo "----- end of guest console log ($KVER) -----"
	} >&2
	exit 1
fi
exit 0
exit
}
