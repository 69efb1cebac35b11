#!/bin/bash
# tests/fuzz/run-fuzz.sh: build the libFuzzer targets, replay the saved
# crash inputs, then fuzz each target for a while.
#
#   tests/fuzz/run-fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS   fuzzing time per target (default 30; 0: build and replay only)
# TARGET    fuzz_addr, fuzz_opts, ... (default: all)
#
# Each target is built with clang (-fsanitize=fuzzer,address,undefined)
# straight from the sources, without the autotools build: only config.h is
# taken from a configured tree (FUZZ_CONFIG_H, else ./config.h at the top;
# without one a minimal config.h is generated).  clang-14 and
# libclang-rt-14-dev are installed when missing (as root, or through
# `sudo -n`), as ./bootstrap does for the other dependencies.
#
# For every target:
#   1. every file in tests/fuzz/regress/TARGET/ is run once: these are
#      inputs that crashed once, kept as regression tests;
#   2. libFuzzer runs for SECONDS on tests/fuzz/corpus/TARGET (the seeds,
#      read only) and a working corpus in the build directory, kept between
#      runs so that long runs (`make fuzz`) build on each other.
# A target fails when it does not build, when a regression input crashes,
# or when the fuzzer finds a crash, leak, timeout or sanitizer report; the
# input that did it is named.  Last line: "N passed, N failed"; the exit
# status is 1 when anything failed (2: the toolchain is missing).
#
# Environment:
#   FUZZ_CC         compiler (default: clang-14, else clang)
#   FUZZ_BUILD      build and working directory (default tests/fuzz/build)
#   FUZZ_CONFIG_H   the configured tree's config.h
#   FUZZ_ARGS       extra libFuzzer flags for the fuzzing runs (-jobs=..., ...)
#   FUZZ_TOLERATE   known issues the harnesses let pass (see the harnesses;
#                   for exploring past a bug that is not fixed yet)
#   FUZZ_COVERAGE   1: after fuzzing, line and branch coverage of the
#                   target's sources over its corpora (llvm-cov; needs the
#                   llvm-14 package, skipped without it)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD:-$here/build}

say() { printf 'run-fuzz: %s\n' "$*"; }

seconds=30
if (( $# )) && [[ $1 =~ ^[0-9]+$ ]]; then
	seconds=$1
	shift
fi

# name|sources (relative to the top)|libFuzzer flags
TARGETS=(
	"fuzz_addr|core/addr.c core/err.c|-max_len=512"
	"fuzz_opts|cli/opts.c tests/cli_stubs.c core/peercheck.c core/conn.c core/channel_soft.c core/channel_kernel.c core/selfcert.c core/limits.c core/net.c core/probe.c core/ticket.c core/addr.c core/cipher.c core/keys.c core/handshake.c core/hsinfo.c core/starttls.c core/err.c|-max_len=1024 -dict=$here/fuzz_opts.dict"
	"fuzz_commands|cli/commands.c|-max_len=1024"
	"fuzz_http|core/http.c|-max_len=10000"
	"fuzz_ticket|core/ticket.c core/err.c|-max_len=4096"
	"fuzz_sessfile|core/sessfile.c core/atomicfile.c core/err.c|-max_len=8192"
	"fuzz_record|core/channel_soft.c core/cipher.c core/keys.c core/err.c|-max_len=8192"
	"fuzz_conn|core/conn.c core/channel_soft.c core/channel_kernel.c core/handshake.c core/hsinfo.c core/selfcert.c core/cipher.c core/keys.c core/limits.c core/net.c core/probe.c core/ticket.c core/addr.c core/err.c|-max_len=8192 -detect_leaks=0"
	"fuzz_ctl_server|core/ctl.c core/diag/session_view.c core/diag/view.c core/diag/view_json.c core/conn.c core/channel_soft.c core/channel_kernel.c core/handshake.c core/hsinfo.c core/selfcert.c core/cipher.c core/keys.c core/limits.c core/net.c core/probe.c core/ticket.c core/addr.c core/err.c|-max_len=4096 -dict=$here/fuzz_ctl.dict"
	"fuzz_ctl_client|core/ctl.c core/diag/session_view.c core/diag/hsinfo_view.c core/diag/view.c core/diag/view_json.c core/diag/view_text.c core/conn.c core/channel_soft.c core/channel_kernel.c core/handshake.c core/hsinfo.c core/selfcert.c core/cipher.c core/keys.c core/limits.c core/net.c core/probe.c core/ticket.c core/addr.c core/diag/procfs.c core/diag/caps.c core/diag/tls_stat.c core/diag/sockdiag.c core/diag/metrics.c core/http.c core/atomicfile.c core/err.c cli/out.c cli/signals.c cli/stats_serve.c core/serve.c core/loop.c core/spawn.c core/pump.c cli/serve.c cli/workers.c|-max_len=20000 -dict=$here/fuzz_ctl.dict"
	"fuzz_sockdiag|core/diag/sockdiag.c core/diag/view.c core/diag/procfs.c core/probe.c core/channel_kernel.c core/cipher.c core/keys.c core/err.c|-max_len=16384 -dict=$here/fuzz_sockdiag.dict"
	"fuzz_procfs|core/diag/sockdiag.c core/diag/view.c core/diag/procfs.c core/probe.c core/channel_kernel.c core/cipher.c core/keys.c core/err.c|-max_len=4096 -dict=$here/fuzz_procfs.dict"
	"fuzz_tls_stat|core/diag/tls_stat.c core/diag/view.c core/err.c|-max_len=16384 -dict=$here/fuzz_tls_stat.dict"
)
# fuzz_conn keeps TLS pairs alive between inputs, so libFuzzer's per-input
# leak check would fire (and re-run the input) on every new pair; leaks are
# still reported at exit by LeakSanitizer, where only live pairs remain.

selected=("$@")
want() {
	(( ${#selected[@]} == 0 )) && return 0
	local t
	for t in "${selected[@]}"; do [[ $t == "$1" ]] && return 0; done
	return 1
}
for t in "${selected[@]}"; do
	found=false
	for row in "${TARGETS[@]}"; do [[ ${row%%|*} == "$t" ]] && found=true; done
	$found || { say "unknown target '$t'"; exit 2; }
done

# ------------------------------------------------------------ toolchain

as_root() {
	if (( EUID == 0 )); then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		return 1
	fi
}

install_pkgs() {
	command -v apt-get >/dev/null || return 1
	say "installing $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

mkdir -p "$build" || exit 2

# Does $1 build and run a libFuzzer binary?
cc_works() {
	command -v "$1" >/dev/null || return 1
	printf '%s\n' '#include <stdint.h>' '#include <stddef.h>' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
		>"$build/probe.c"
	"$1" -fsanitize=fuzzer,address,undefined "$build/probe.c" -o "$build/probe" \
		>/dev/null 2>&1 && "$build/probe" -runs=1 >/dev/null 2>&1
}

CC=
for c in ${FUZZ_CC:-} clang-14 clang; do
	if cc_works "$c"; then CC=$c; break; fi
done
if [[ -z $CC && -z ${FUZZ_CC:-} ]]; then
	if install_pkgs clang-14 libclang-rt-14-dev && cc_works clang-14; then
		CC=clang-14
	fi
fi
if [[ -z $CC ]]; then
	say "no clang with libFuzzer (-fsanitize=fuzzer): install clang-14 and libclang-rt-14-dev" >&2
	say "    sudo apt-get install clang-14 libclang-rt-14-dev" >&2
	exit 2
fi
if ! pkg-config --exists gnutls 2>/dev/null; then
	install_pkgs pkg-config libgnutls28-dev || true
	if ! pkg-config --exists gnutls 2>/dev/null; then
		say "GnuTLS development files not found: apt-get install libgnutls28-dev pkg-config" >&2
		exit 2
	fi
fi
rm -f "$build/probe.c" "$build/probe"

# ------------------------------------------------------------- config.h

config=${FUZZ_CONFIG_H:-$top/config.h}
incs=()
if [[ -f $config ]]; then
	incs=(-I"$(cd "$(dirname "$config")" && pwd)")
else
	say "no config.h (run ./configure for the real one): using a minimal one"
	mkdir -p "$build/gen"
	cat >"$build/gen/config.h" <<-'EOF'
	/* minimal config.h for the fuzz build (tests/fuzz/run-fuzz.sh) */
	#define _GNU_SOURCE 1
	#define PACKAGE "ktlsctl"
	#define PACKAGE_NAME "ktlsctl"
	#define PACKAGE_VERSION "0"
	#define VERSION "0"
	#define PACKAGE_STRING "ktlsctl 0"
	EOF
	incs=(-I"$build/gen")
fi
incs+=(-I"$top" -I"$here")

CFLAGS=(-g -O1 -fno-omit-frame-pointer -std=gnu11
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-Wall -Wextra -Wno-unused-parameter)
read -r -a GNUTLS_CFLAGS <<<"$(pkg-config --cflags gnutls)"
read -r -a GNUTLS_LIBS <<<"$(pkg-config --libs gnutls)"

export ASAN_OPTIONS="halt_on_error=1:print_stacktrace=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

say "$CC, $seconds s per target, build in $build"

passed=0 failed=0
failures=()
summary=()

fail() {   # target, why
	failures+=("$1: $2")
}

# Source-based coverage of a target's library files over its corpora: a
# build without sanitizers that only replays them (known issues tolerated,
# so that a crash does not lose the profile).
PROFDATA=${CC/clang/llvm-profdata}
LLVMCOV=${CC/clang/llvm-cov}
coverage() {
	local name=$1
	shift
	local dir=$build/cov
	if ! command -v "$PROFDATA" >/dev/null || ! command -v "$LLVMCOV" >/dev/null; then
		say "$name: no $PROFDATA/$LLVMCOV (package llvm-14): no coverage report"
		return
	fi
	mkdir -p "$dir"
	rm -f "$dir/$name".prof*
	if ! (cd "$top" && "$CC" -g -O0 -std=gnu11 -fsanitize=fuzzer -fprofile-instr-generate \
		-fcoverage-mapping "${incs[@]}" "${GNUTLS_CFLAGS[@]}" "$here/$name.c" "$@" \
		-o "$dir/$name" "${GNUTLS_LIBS[@]}" -pthread) >"$dir/$name.build" 2>&1; then
		say "$name: coverage build failed (see $dir/$name.build)"
		return
	fi
	LLVM_PROFILE_FILE="$dir/$name.profraw" FUZZ_CONN_FRESH=1 FUZZ_TOLERATE=type0,optmsg \
		ASAN_OPTIONS= "$dir/$name" -runs=0 -detect_leaks=0 -artifact_prefix="$dir/" \
		"$build/corpus/$name" "$here/corpus/$name" >"$dir/$name.log" 2>&1
	"$PROFDATA" merge -sparse "$dir/$name.profraw" -o "$dir/$name.profdata" 2>/dev/null || {
		say "$name: no coverage profile (see $dir/$name.log)"
		return
	}
	local files=()
	for f in "$@"; do files+=("$top/$f"); done
	say "$name: coverage over its corpora (llvm-cov report):"
	"$LLVMCOV" report "$dir/$name" -instr-profile="$dir/$name.profdata" "${files[@]}" 2>/dev/null |
		awk 'NR == 1 || /^-/ { next }
		     { f = $1; if (match(f, /(core|cli)\/[^\/]+$/)) f = substr(f, RSTART)
		       printf "    %-20s lines %s/%s (%s)  branches %s/%s (%s)\n",
			f, $8 - $9, $8, $10, $11 - $12, $11, $13 }'
}

for row in "${TARGETS[@]}"; do
	IFS='|' read -r name srcs flags <<<"$row"
	want "$name" || continue
	bin=$build/$name
	log=$build/logs/$name
	mkdir -p "$build/logs" "$build/crashes/$name" "$build/corpus/$name"
	ok=true

	# ---- build
	read -r -a src_arr <<<"$srcs"
	if ! (cd "$top" && "$CC" "${CFLAGS[@]}" "${incs[@]}" "${GNUTLS_CFLAGS[@]}" \
		"$here/$name.c" "${src_arr[@]}" -o "$bin" "${GNUTLS_LIBS[@]}" -pthread) \
		>"$log.build" 2>&1; then
		cat "$log.build" >&2
		fail "$name" "does not build (see $log.build)"
		failed=$((failed + 1))
		summary+=("$(printf '%-14s FAIL  build' "$name")")
		continue
	fi

	# ---- regression inputs, one process each (fresh state)
	nreg=0
	if [[ -d $here/regress/$name ]]; then
		for f in "$here/regress/$name"/*; do
			[[ -f $f ]] || continue
			nreg=$((nreg + 1))
			if ! FUZZ_CONN_FRESH=1 timeout 120 "$bin" -runs=1 "$f" >"$log.regress" 2>&1; then
				say "$name: regression input crashes: $f"
				grep -aE '^(fuzz_|==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log.regress" | head -5
				fail "$name" "regression input $f crashes"
				ok=false
			fi
		done
	fi

	# ---- fuzzing
	stats="-"
	if (( seconds > 0 )); then
		read -r -a flag_arr <<<"$flags"
		read -r -a extra <<<"${FUZZ_ARGS:-}"
		rm -f "$build/crashes/$name"/*
		timeout $((seconds + 120)) "$bin" "${flag_arr[@]}" "${extra[@]}" \
			-max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
			-print_final_stats=1 -artifact_prefix="$build/crashes/$name/" \
			"$build/corpus/$name" "$here/corpus/$name" >"$log" 2>&1
		rc=$?
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
		eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
		cov=$(grep -aoE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
		ft=$(grep -aoE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
		corp=$(grep -aoE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
		stats="runs ${execs:-?}, ${eps:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
		if (( rc != 0 )); then
			unit=$(grep -aoE 'Test unit written to .*' "$log" | tail -1 | sed 's/^Test unit written to //')
			grep -aE '^(fuzz_|==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5
			if grep -aq 'ERROR: LeakSanitizer' "$log" && [[ -z $unit || ! -s $unit ]]; then
				fail "$name" "memory leak reported at exit (see $log)"
			elif [[ -n $unit ]]; then
				fail "$name" "crash (exit $rc), input: $unit (log: $log)"
			else
				fail "$name" "fuzzer exited with $rc (see $log)"
			fi
			ok=false
		fi
	fi
	if [[ ${FUZZ_COVERAGE:-0} == 1 ]]; then
		coverage "$name" "${src_arr[@]}"
	fi
	if $ok; then
		passed=$((passed + 1))
		summary+=("$(printf '%-14s ok    %s; %d regression inputs' "$name" "$stats" "$nreg")")
	else
		failed=$((failed + 1))
		summary+=("$(printf '%-14s FAIL  %s; %d regression inputs' "$name" "$stats" "$nreg")")
	fi
done

echo
for s in "${summary[@]}"; do say "$s"; done
for f in "${failures[@]}"; do say "FAILED $f"; done
echo "$passed passed, $failed failed"
(( failed == 0 ))
