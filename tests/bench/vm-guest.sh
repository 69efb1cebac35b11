#!/bin/bash
# tests/bench/vm-guest.sh: the scenario `make bench-vm` runs INSIDE the guest
# (tests/vm/run-vm.sh boots it; bench-vm.sh says what to run).
#
# Runs bench.py with BENCH_ARGS (a bash-quoted word list) and prints each
# line of its output as "VMBENCH line", its JSON report (if it wrote one) as
# "VMJSON line", then "VMRESULT PASS bench", or "VMRESULT FAIL bench: why"
# when bench.py failed.  The serial console is the only way out of the
# guest, and run-vm.sh needs a VMRESULT line.
#
# Environment (from bench-vm.sh through run-vm.sh's VM_ENV_*):
#   KTLSCTL        the ktlsctl binary (run-vm.sh)
#   BENCH_PY       tests/bench/bench.py
#   BENCH_ARGS     its arguments, quoted for bash
#   BENCH_TCPCOPY  tests/bench/tcpcopy, if built
{
set -u

PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)
json=$TMPDIR/bench.json
eval "args=(${BENCH_ARGS:-})"

echo "VMINFO bench: kernel $(uname -r), $(nproc) CPUs, TCP ULPs: $(cat /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null)"
BENCH_TCPCOPY=${BENCH_TCPCOPY:-} "$PY" "$BENCH_PY" "${args[@]}" --json "$json" 2>&1 |
	sed -u 's/^/VMBENCH /'
rc=${PIPESTATUS[0]}
[[ -f $json ]] && sed 's/^/VMJSON /' "$json"
if [[ $rc -eq 0 ]]; then
	echo "VMRESULT PASS bench"
else
	echo "VMRESULT FAIL bench: bench.py exited with status $rc"
fi
exit 0
}
