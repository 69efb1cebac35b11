#!/bin/bash
# tests/vm/scenarios.sh: what the VM tier proves on each real kernel.
#
# Runs INSIDE the guest (run-vm.sh boots it): as root, chrooted into the
# host's root file system (read-only), scratch space in $TMPDIR, loopback
# up, the kTLS modules loaded.  ktlsctl ($KTLSCTL) and the peers
# (gnutls-serv, gnutls-cli, openssl, python3) come from the host.
#
# What it proves: the kernel channel is in use (tcp-ulp-tls in ss, the
# tls_stat gauges, ktlsctl stats); data integrity both ways for TLS 1.2 and
# 1.3 x AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305, AES-128-CCM against
# gnutls-serv, s_server, gnutls-cli and s_client; tickets after the
# handover; resumption; close_notify both ways; truncation (8); tampered
# and garbage records (9); peer KeyUpdates with and without
# update_requested (continue on a kernel that can rekey, exit 10 on one that
# cannot); the KeyUpdate-behind-data poll pitfall; our own key updates
# (keyupdate PID, --key-update-after); IPv6; ktlsctl selftest; no copy of
# a traffic key, IV or secret in ktlsctl's memory outside GnuTLS's state.
#
# Each scenario prints one line "VMRESULT PASS name" or "VMRESULT FAIL
# name: reason" (a failure is followed by "VMLOG" lines with the evidence),
# or "VMRESULT SKIP name: reason" for a feature ktlsctl does not have yet.
# Every scenario runs under its own timeout, so a hang is a FAIL, never a
# stuck guest.  The script exits 0 once every scenario has reported.
#
# Environment:
#   KTLSCTL        the binary under test (required)
#   EXPECT_REKEY   yes / no: whether this kernel must be able to rekey kTLS
#                  (TLS 1.3 key update, Linux >= 6.14); unset: not checked
#   ONLY           run only the scenarios whose name contains this string
#   SUITE_ONLY     in the integration suites (sc_suite), run only the cases
#                  whose name contains this string (their -k)
#   DATA_KIB       size of the random data per transfer (default 64)
#   HOST_DEBUG=1   run on a machine without kTLS: ktlsctl uses --ktls off
#                  and kernel-only checks are skipped (to debug the script;
#                  with EXPECT_REKEY=no KTLSCTL_TEST_SOFT_NOREKEY=1 the
#                  no-rekey branches run against the user-space channel)
#   PARALLEL       scenarios marked "par" run this many at a time (default 3)
#   TIMEOUT_SCALE  multiplier for every timeout (default 1; slower builds)
#   XTRACE=1       trace every scenario (with timestamps) into its run.log,
#                  which a failure prints
# (The whole script is read before it runs: replacing it on disk while it
# runs cannot change what this run does.)
{
set -u

SELF=$(readlink -f "$0")
KTLSCTL=${KTLSCTL:?KTLSCTL must name the ktlsctl binary}
DATA_KIB=${DATA_KIB:-64}
HOST_DEBUG=${HOST_DEBUG:-0}
TIMEOUT_SCALE=${TIMEOUT_SCALE:-1}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

if [[ $HOST_DEBUG == 1 ]]; then
	KTLS=(--ktls off)
	CHANNEL="user-space channel"
else
	KTLS=(--ktls require)
	CHANNEL="kernel channel"
fi

# Whether this kernel can rekey kTLS: the rekey counters (Linux 6.14) are
# in /proc/net/tls_stat.  Reading it has no side effect.
kernel_rekey() {
	if [[ $HOST_DEBUG == 1 ]]; then
		echo "${EXPECT_REKEY:-yes}"
	elif grep -q '^TlsTxRekeyOk' /proc/net/tls_stat 2>/dev/null; then
		echo yes
	else
		echo no
	fi
}

# Under TCG every fork+exec costs about 0.1 s of the guest's only CPU, so
# the waiting helpers below fork as little as they can: time from
# $EPOCHREALTIME, naps from a read with timeout on a FIFO nobody writes.
SCALE_PCT=${SCALE_PCT:-$(awk -v k="$TIMEOUT_SCALE" 'BEGIN { printf "%d", k * 100 + 0.5 }')}
export SCALE_PCT
secs() { echo $(( ($1 * SCALE_PCT + 50) / 100 )); }
now_ms() { NOW_MS=$(( ${EPOCHREALTIME/./} / 1000 )); }
nap() { read -r -t "$1" -u "$NAPFD" _ 2>/dev/null || true; }

# ---------------------------------------------------------------- helpers
# (used inside a scenario: the current directory is the scenario's own)

# fail REASON: end the scenario as failed.
fail() {
	echo "$*" > reason
	exit 1
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local limit step=50 t
	now_ms
	limit=$(( NOW_MS + ($1 * SCALE_PCT + 50) / 100 * 1000 ))
	shift
	until "$@"; do
		now_ms
		(( NOW_MS < limit )) || return 1
		printf -v t '0.%03d' "$step"
		nap "$t"
		(( step = step * 2 > 400 ? 400 : step * 2 ))
	done
}

size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
size_ge() { (( $(size_of "$1") >= $2 )); }
# has FILE STRING, for text files (read by the shell: no fork)
has() {
	local c=
	[[ -f $1 ]] || return 1
	IFS= read -r -d '' c < "$1"
	[[ $c == *"$2"* ]]
}
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
sha() { sha256sum < "$1" | cut -c1-64; }

# same FILE_GOT FILE_WANT WHAT: the data arrived intact.
same() {
	[[ -f $1 ]] || fail "$3: nothing received"
	if ! cmp -s "$1" "$2"; then
		fail "$3: data differs (got $(size_of "$1") bytes, want $(size_of "$2"), sha256 $(sha "$1" | cut -c1-16) vs $(sha "$2" | cut -c1-16))"
	fi
}

# wait_exit PID SECONDS: the process's exit status (or 124 after SECONDS,
# when it is killed).
wait_exit() {
	local pid=$1 limit step=20 t
	now_ms
	limit=$(( NOW_MS + ($2 * SCALE_PCT + 50) / 100 * 1000 ))
	while kill -0 "$pid" 2>/dev/null; do
		now_ms
		if (( NOW_MS >= limit )); then
			kill -9 "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			return 124
		fi
		printf -v t '0.%03d' "$step"
		nap "$t"
		(( step = step * 2 > 250 ? 250 : step * 2 ))
	done
	wait "$pid"
}

# expect_exit PID SECONDS STATUS WHAT
expect_exit() {
	local rc=0
	wait_exit "$1" "$2" || rc=$?
	if [[ $rc -eq 124 ]]; then
		fail "$4 hung: no exit within $(secs "$2")s (killed)"
	elif [[ $rc -ne $3 ]]; then
		fail "$4 exited with status $rc, expected $3"
	fi
}

# The random test data, made once per run in $W/pool (scenarios only read
# it): binary, or base64 text (gnutls-serv --echo and the inline commands
# of gnutls-cli only pass text lines through unchanged).
#   bin-a, bin-b   DATA_KIB KiB binary      txt-a   DATA_KIB KiB of text
#   bin-8k         8 KiB binary             txt-4k, txt-2k
#   txt16-a/b      16 KiB text              txt8-a/b  8 KiB text
make_pool() {
	local d=$W/pool n=$((DATA_KIB * 1024))
	mkdir -p "$d"
	head -c "$n" /dev/urandom > "$d/bin-a"
	head -c "$n" /dev/urandom > "$d/bin-b"
	head -c 8192 /dev/urandom > "$d/bin-8k"
	head -c "$(( n * 3 / 4 ))" /dev/urandom | base64 -w 76 > "$d/txt-a"
	local f
	for f in 4k:4096 2k:2048 16-a:16384 16-b:16384 8-a:8192 8-b:8192; do
		head -c "$(( ${f#*:} * 3 / 4 ))" /dev/urandom | base64 -w 76 > "$d/txt${f%%:*}"
	done
	mv "$d/txt4k" "$d/txt-4k"
	mv "$d/txt2k" "$d/txt-2k"
}

tls_stat() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat 2>/dev/null || echo 0; }

# Ports: each scenario has its own block of 10 (fresh guest, nothing else runs).
port() { PORT=$(( 20000 + CASE_INDEX * 10 + $1 )); }

# listening PORT: a TCP socket listens on PORT (from /proc, no fork: ss
# costs 0.4 s under TCG).
listening() {
	local hex f local_addr st
	printf -v hex ':%04X' "$1"
	for f in /proc/net/tcp /proc/net/tcp6; do
		[[ -r $f ]] || continue
		while read -r _ local_addr _ st _; do
			[[ $st == 0A && $local_addr == *"$hex" ]] && return 0
		done < "$f"
	done
	return 1
}

# (these set variables rather than print: a $(...) forks, and forks are
# what costs under TCG)
gprio() {  # VERSION [CIPHER] -> PRIO
	PRIO="NORMAL:-VERS-ALL:+VERS-TLS$1"
	[[ -z ${2:-} ]] || PRIO+=":-CIPHER-ALL:+$2"
}

# openssl arguments pinning version and cipher (ECDSA certificate).
ossl() {  # VERSION [CIPHER] -> OSSL (array)
	local c=${2:-}
	if [[ $1 == 1.2 ]]; then
		OSSL=(-tls1_2)
		case $c in
		AES-128-GCM) OSSL+=(-cipher ECDHE-ECDSA-AES128-GCM-SHA256) ;;
		AES-256-GCM) OSSL+=(-cipher ECDHE-ECDSA-AES256-GCM-SHA384) ;;
		CHACHA20-POLY1305) OSSL+=(-cipher ECDHE-ECDSA-CHACHA20-POLY1305) ;;
		AES-128-CCM) OSSL+=(-cipher ECDHE-ECDSA-AES128-CCM) ;;
		esac
	else
		OSSL=(-tls1_3)
		case $c in
		AES-128-GCM) OSSL+=(-ciphersuites TLS_AES_128_GCM_SHA256) ;;
		AES-256-GCM) OSSL+=(-ciphersuites TLS_AES_256_GCM_SHA384) ;;
		CHACHA20-POLY1305) OSSL+=(-ciphersuites TLS_CHACHA20_POLY1305_SHA256) ;;
		AES-128-CCM) OSSL+=(-ciphersuites TLS_AES_128_CCM_SHA256) ;;
		esac
	fi
}

ktls_args() {  # VERSION [CIPHER] -> TA (array)
	TA=(--tls"$1")
	[[ -z ${2:-} ]] || TA+=(--cipher "$2")
}

# start_gnutls_serv PORT PRIORITY: gnutls-serv --echo in the background.
start_gnutls_serv() {
	gnutls-serv -p "$1" --x509certfile "$W/srv.pem" --x509keyfile "$W/srv.key" -a \
		--echo --crlf --priority "$2" > gnutls-serv.out 2> gnutls-serv.err 6>&- 7>&- 8>&- &
	wait_for 40 listening "$1" || fail "gnutls-serv did not start listening on $1"
}

# start_s_server PORT [ARGS...]: one-connection s_server; stdin from the fd
# 7 we hold (EOF would end its session), stdout to s_server.out.
start_s_server() {
	local p=$1
	shift
	mkfifo s_server.in
	openssl s_server -accept "$p" -cert "$W/srv.pem" -key "$W/srv.key" -naccept 1 "$@" \
		< s_server.in > s_server.out 2> s_server.err 6>&- 7>&- 8>&- &
	exec 7> s_server.in
	wait_for 40 listening "$p" || fail "openssl s_server did not start listening on $p"
}

# start_listen ARGS...: ktlsctl listen 127.0.0.1:0 in the background,
# stdin from k.in (fd 8 held open unless LISTEN_STDIN is a file);
# sets KPID and LPORT.
start_listen() {
	if [[ -n ${LISTEN_STDIN:-} ]]; then
		"$KTLSCTL" listen 127.0.0.1:0 --cert "$W/srv.pem" --key "$W/srv.key" "${KTLS[@]}" -v "$@" \
			< "$LISTEN_STDIN" > k.out 2> k.err 6>&- 7>&- 8>&- &
		KPID=$!
	else
		mkfifo k.in
		"$KTLSCTL" listen 127.0.0.1:0 --cert "$W/srv.pem" --key "$W/srv.key" "${KTLS[@]}" -v "$@" \
			< k.in > k.out 2> k.err 6>&- 7>&- 8>&- &
		KPID=$!
		exec 8> k.in
	fi
	wait_for 40 has k.err "listening on" || fail "ktlsctl listen did not start: $(head -c 300 k.err)"
	LPORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' k.err | head -n1)
	[[ -n $LPORT ]] || fail "cannot read the port from: $(head -n3 k.err)"
}

# start_connect PORT ARGS...: ktlsctl connect localhost:PORT in the
# background with stdin from k.in (fd 8 held open); sets KPID.
start_connect() {
	local p=$1
	shift
	mkfifo k.in
	"$KTLSCTL" connect "localhost:$p" --cafile "$W/ca.pem" "${KTLS[@]}" -v "$@" \
		< k.in > k.out 2> k.err 6>&- 7>&- 8>&- &
	KPID=$!
	exec 8> k.in
}

# The kernel record channel was used (ktlsctl -v says which).
check_channel() {
	has "${1:-k.err}" "$CHANNEL" ||
		fail "ktlsctl did not report the $CHANNEL: $(grep -m1 -E 'connected|accepted|channel' "${1:-k.err}")"
}

gnutls_cli() {  # PORT PRIORITY [ARGS...]  (stdin/stdout: the caller's)
	local p=$1 prio=$2
	shift 2
	gnutls-cli --logfile gnutls-cli.log --x509cafile "$W/ca.pem" -p "$p" --priority "$prio" "$@" localhost
}

s_client() {  # PORT ARGS...
	local p=$1
	shift
	openssl s_client -connect "localhost:$p" -CAfile "$W/ca.pem" -verify_return_error \
		-verify_hostname localhost "$@"
}

# ================================================================ scenarios

# --- the kernel channel is really in use --------------------------------
sc_kernel_channel() {
	local p tx0 rx0
	port 0; p=$PORT
	gprio 1.3 AES-128-GCM
	start_gnutls_serv "$p" "$PRIO"
	tx0=$(tls_stat TlsTxSw)
	rx0=$(tls_stat TlsRxSw)
	start_connect "$p" --tls1.3 --cipher AES-128-GCM
	echo "hello through the kernel" >&8
	wait_for 20 size_ge k.out 25 || fail "no echo from gnutls-serv: $(tail -n3 k.err)"
	check_channel
	if [[ $HOST_DEBUG == 1 ]]; then
		exec 8>&-
		expect_exit "$KPID" 20 0 "ktlsctl connect"
		return 0
	fi
	# While the session is up: the socket's ULP is "tls" (sock_diag, what
	# getsockopt(TCP_ULP) reads), owned by ktlsctl, and the gauges count it.
	ss -Htnpie state established "dport = :$p" > ss.ktlsctl
	ss -Htnpie state established "sport = :$p" > ss.gnutls-serv
	grep -q 'ktlsctl' ss.ktlsctl || fail "ss shows no ktlsctl socket to :$p: $(cat ss.ktlsctl)"
	grep -q 'tcp-ulp-tls' ss.ktlsctl ||
		fail "ktlsctl's socket has no tls ULP (ss -tie): $(tr '\n' ' ' < ss.ktlsctl)"
	grep -q 'version: 1.3 cipher: aes-gcm-128' ss.ktlsctl ||
		fail "ss does not show TLS 1.3 AES-GCM-128 on ktlsctl's socket: $(tr '\n' ' ' < ss.ktlsctl)"
	grep -q 'rxconf: sw txconf: sw' ss.ktlsctl ||
		fail "ss does not show software kTLS both ways: $(tr '\n' ' ' < ss.ktlsctl)"
	# Control: gnutls-serv's own socket (user-space TLS) has no ULP, so
	# the check above can tell the difference.
	grep -q 'gnutls-serv' ss.gnutls-serv || fail "ss shows no gnutls-serv socket: $(cat ss.gnutls-serv)"
	! grep -q 'tcp-ulp-tls' ss.gnutls-serv || fail "gnutls-serv's socket claims a tls ULP: ss output unreliable"
	(( $(tls_stat TlsCurrTxSw) >= 1 && $(tls_stat TlsCurrRxSw) >= 1 )) ||
		fail "TlsCurrTxSw/TlsCurrRxSw do not count the session: $(tr '\n' ' ' < /proc/net/tls_stat)"
	# ktlsctl's own view (its control socket): the kernel channel, and the
	# record count the kernel keeps (getsockopt TLS_TX rec_seq): one record
	# sent so far.
	"$KTLSCTL" stats "$KPID" > stats.out 2> stats.err 6>&- 7>&- 8>&- ||
		fail "ktlsctl stats $KPID failed: $(cat stats.err)"
	has stats.out "record channel: kernel" || fail "ktlsctl stats: not the kernel channel: $(tr '\n' ' ' < stats.out)"
	grep -A1 '^ *send:' stats.out | grep -q 'records under the current key: 1$' ||
		fail "ktlsctl stats: the kernel's send record count is not 1: $(tr '\n' ' ' < stats.out)"
	exec 8>&-
	expect_exit "$KPID" 20 0 "ktlsctl connect"
	(( $(tls_stat TlsTxSw) > tx0 && $(tls_stat TlsRxSw) > rx0 )) ||
		fail "TlsTxSw/TlsRxSw did not grow ($tx0 -> $(tls_stat TlsTxSw), $rx0 -> $(tls_stat TlsRxSw))"
	has k.out 'hello through the kernel' || fail "echo garbled: $(head -c 100 k.out)"
}

# --- data integrity both ways, per version x cipher x peer ---------------
sc_connect_gnutls_serv() {  # VERSION CIPHER
	local p data=$W/pool/txt-a
	port 0; p=$PORT
	gprio "$1" "$2"
	ktls_args "$1" "$2"
	start_gnutls_serv "$p" "$PRIO"
	"$KTLSCTL" connect "localhost:$p" --cafile "$W/ca.pem" "${KTLS[@]}" -v "${TA[@]}" \
		< "$data" > k.out 2> k.err 6>&- 7>&- 8>&- &
	KPID=$!
	expect_exit "$KPID" 60 0 "ktlsctl connect"
	check_channel
	has k.err "TLS$1" || fail "not TLS $1: $(grep -m1 connected k.err)"
	same k.out "$data" "echo from gnutls-serv"
}

sc_connect_s_server() {  # VERSION CIPHER
	local p down=$W/pool/bin-a up=$W/pool/bin-b prime="0123456789abcdef-prime"
	port 0; p=$PORT
	ossl "$1" "$2"
	ktls_args "$1" "$2"
	start_s_server "$p" -quiet "${OSSL[@]}"
	start_connect "$p" "${TA[@]}"
	# s_server writes stdin data that is there at accept time inside the
	# handshake and can then stall: let the client speak first.
	echo "$prime" >&8
	wait_for 30 has s_server.out "$prime" ||
		fail "s_server never received the first line: $(tail -n3 k.err) $(tail -n3 s_server.err)"
	cat "$down" >&7 &
	local catpid=$!
	cat "$up" >&8
	wait "$catpid"
	wait_for 60 size_ge k.out "$(size_of "$down")" ||
		fail "ktlsctl received $(size_of k.out) of $(size_of "$down") bytes"
	wait_for 30 size_ge s_server.out $(( $(size_of "$up") + ${#prime} + 1 )) ||
		fail "s_server received $(size_of s_server.out) of $(( $(size_of "$up") + ${#prime} + 1 )) bytes"
	exec 8>&-   # ktlsctl sends close_notify; s_server answers it
	expect_exit "$KPID" 30 0 "ktlsctl connect"
	check_channel
	same k.out "$down" "s_server -> ktlsctl"
	tail -c +$(( ${#prime} + 2 )) s_server.out > s_server.data
	same s_server.data "$up" "ktlsctl -> s_server"
	exec 7>&-
}

sc_gnutls_cli_listen() {  # VERSION CIPHER
	local data=$W/pool/bin-a
	gprio "$1" "$2"
	ktls_args "$1" "$2"
	LISTEN_STDIN=/dev/null
	start_listen --echo "${TA[@]}"
	# gnutls-cli quits 2 s after its stdin ends if nothing arrives: under
	# load the echo can be slower, so its stdin stays open until it has all.
	mkfifo cli.in
	gnutls_cli "$LPORT" "$PRIO" < cli.in > cli.out 2> cli.err 6>&- 7>&- 8>&- &
	local cpid=$!
	exec 6> cli.in
	cat "$data" >&6
	wait_for 60 size_ge cli.out "$(size_of "$data")" ||
		fail "gnutls-cli got $(size_of cli.out) of $(size_of "$data") echoed bytes: $(tail -n2 k.err)"
	exec 6>&-   # gnutls-cli sends close_notify; ktlsctl answers and exits
	expect_exit "$KPID" 60 0 "ktlsctl listen --echo"
	expect_exit "$cpid" 20 0 "gnutls-cli"
	check_channel
	same cli.out "$data" "echo to gnutls-cli"
}

sc_s_client_listen() {  # VERSION CIPHER
	local data=$W/pool/bin-b
	ossl "$1" "$2"
	ktls_args "$1" "$2"
	LISTEN_STDIN=/dev/null
	start_listen --echo "${TA[@]}"
	mkfifo cli.in
	s_client "$LPORT" -quiet -no_ign_eof -nocommands "${OSSL[@]}" < cli.in > cli.out 2> cli.err 6>&- 7>&- 8>&- &
	local cpid=$!
	exec 6> cli.in
	cat "$data" >&6
	wait_for 60 size_ge cli.out "$(size_of "$data")" ||
		fail "s_client got $(size_of cli.out) of $(size_of "$data") echoed bytes: $(tail -n2 k.err)"
	exec 6>&-   # s_client sends close_notify; ktlsctl answers and exits
	expect_exit "$KPID" 30 0 "ktlsctl listen --echo"
	wait_exit "$cpid" 20 || true
	check_channel
	same cli.out "$data" "echo to s_client"
}

# --- NewSessionTickets after the handover --------------------------------
sc_tickets() {
	local p data=$W/pool/txt-4k
	port 0; p=$PORT
	gprio 1.3
	start_gnutls_serv "$p" "$PRIO"
	"$KTLSCTL" connect "localhost:$p" --cafile "$W/ca.pem" "${KTLS[@]}" -v --tls1.3 \
		< "$data" > k.out 2> k.err 6>&- 7>&- 8>&- &
	expect_exit $! 30 0 "ktlsctl connect"
	check_channel
	has k.err "session ticket received" || fail "no 'session ticket received' from ktlsctl -v"
	same k.out "$data" "echo after the tickets"
}

# --- close_notify both ways -----------------------------------------------
# ktlsctl closes first: stdin EOF -> close_notify; s_client answers it.
sc_close_ktlsctl_first() {  # VERSION
	local data=$W/pool/bin-8k
	ossl "$1"
	LISTEN_STDIN=$data
	start_listen --tls"$1"
	mkfifo cli.in
	s_client "$LPORT" -quiet -no_ign_eof -nocommands "${OSSL[@]}" < cli.in > cli.out 2> cli.err 6>&- 7>&- 8>&- &
	local cpid=$!
	exec 6> cli.in
	expect_exit "$KPID" 30 0 "ktlsctl listen (closing first)"
	wait_for 10 size_ge cli.out 8192 || fail "s_client got $(size_of cli.out) of 8192 bytes"
	check_channel
	same cli.out "$data" "ktlsctl -> s_client"
	exec 6>&-
	wait_exit "$cpid" 10 || true
}

# The peer closes first: gnutls-cli sends close_notify at its stdin EOF.
# TLS 1.3: ktlsctl keeps sending until its own stdin ends (half-close);
# TLS 1.2: it answers at once, its stdin still open.
sc_close_peer_first() {  # VERSION
	local up=$W/pool/bin-8k
	gprio "$1"
	start_listen --tls"$1"
	gnutls_cli "$LPORT" "$PRIO" < "$up" > cli.out 2> cli.err 6>&- 7>&- 8>&- &
	local cpid=$!
	wait_for 30 size_ge k.out 8192 || fail "ktlsctl got $(size_of k.out) of 8192 bytes"
	if [[ $1 == 1.3 ]]; then
		# No fixed nap: gnutls-cli waits only a short while for data
		# after its close_notify, and under emulation a nap can outlast
		# it.  Whether ktlsctl went on after the close_notify shows in
		# cli.out below.
		wait_for 30 has k.err "peer sent close_notify" ||
			fail "ktlsctl did not see gnutls-cli's close_notify: $(tail -n3 k.err)"
		kill -0 "$KPID" 2>/dev/null ||
			fail "TLS 1.3 ktlsctl ended at the peer's close_notify though its stdin is open"
		echo "still talking after your close_notify" >&8
		exec 8>&-
	fi
	expect_exit "$KPID" 30 0 "ktlsctl listen (peer closing first)"
	expect_exit "$cpid" 20 0 "gnutls-cli"
	check_channel
	same k.out "$up" "gnutls-cli -> ktlsctl"
	if [[ $1 == 1.3 ]]; then
		has cli.out "still talking after your close_notify" ||
			fail "gnutls-cli did not get ktlsctl's data after its own close_notify"
	fi
}

# --- a peer that dies mid-stream: truncation, exit 8 --------------------
sc_peer_dies() {
	local p
	port 0; p=$PORT
	ossl 1.3
	# s_server streams its stdin (endless) to ktlsctl.
	yes "some stream data from a peer that is about to die" | \
		openssl s_server -accept "$p" -cert "$W/srv.pem" -key "$W/srv.key" -naccept 1 -quiet "${OSSL[@]}" \
		> s_server.out 2> s_server.err 6>&- 7>&- 8>&- &
	wait_for 40 listening "$p" || fail "s_server did not start listening"
	local spid
	spid=$(pgrep -f "s_server -accept $p ")
	start_connect "$p" --tls1.3
	echo "0123456789abcdef-prime" >&8
	wait_for 30 size_ge k.out 65536 || fail "no stream from s_server: $(tail -n3 k.err)"
	check_channel
	kill -9 $spid
	expect_exit "$KPID" 30 8 "ktlsctl connect (peer killed)"
	grep -qi "truncat" k.err || fail "no truncation message: $(tail -n2 k.err)"
}

# --- tampered and garbage records: exit 9, not a hang --------------------
sc_tamper() {  # VERSION MODE (flip|garbage)
	local p q derr0 arm=1
	port 0; p=$PORT
	port 1; q=$PORT
	gprio "$1" AES-128-GCM
	ktls_args "$1" AES-128-GCM
	start_gnutls_serv "$p" "$PRIO"
	# The client's Finished is a type-23 record in TLS 1.3: arm after it.
	[[ $1 == 1.3 ]] && arm=2
	"$PY" "$W/mitm.py" "$q" "$p" "$arm" "$2" > mitm.out 2> mitm.err 6>&- 7>&- 8>&- &
	wait_for 40 listening "$q" || fail "the proxy did not start: $(cat mitm.err)"
	derr0=$(tls_stat TlsDecryptError)
	start_connect "$q" "${TA[@]}"
	cat "$W/pool/txt-2k" >&8
	expect_exit "$KPID" 30 9 "ktlsctl connect (${2} record)"
	has mitm.out "tampered" || fail "the proxy never tampered: $(cat mitm.out mitm.err)"
	check_channel
	if [[ $2 == flip ]]; then
		grep -qi "authentication" k.err || fail "no authentication error message: $(tail -n2 k.err)"
		[[ $HOST_DEBUG == 1 ]] || (( $(tls_stat TlsDecryptError) > derr0 )) ||
			fail "TlsDecryptError did not grow"
	else
		grep -qiE "malformed|record header|oversized" k.err ||
			fail "no malformed-record message: $(tail -n2 k.err)"
	fi
	exec 8>&-
}

# --- peer KeyUpdate --------------------------------------------------------
# gnutls-cli --inline-commands: ^rekey1^ = KeyUpdate(update_not_requested),
# ^rekey^ = KeyUpdate(update_requested).
sc_keyupdate_gnutls_cli() {  # CMD (rekey1|rekey)
	local rx0 tx0 a=$W/pool/txt16-a b=$W/pool/txt16-b
	rx0=$(tls_stat TlsRxRekeyOk)
	tx0=$(tls_stat TlsTxRekeyOk)
	gprio 1.3
	LISTEN_STDIN=/dev/null
	start_listen --echo --tls1.3
	{ cat "$a"; echo "^$1^"; cat "$b"; } > stream
	cat "$a" "$b" > want
	mkfifo cli.in
	gnutls_cli "$LPORT" "$PRIO" --inline-commands < cli.in > cli.out 2> cli.err 6>&- 7>&- 8>&- &
	local cpid=$!
	exec 6> cli.in
	cat stream >&6
	if [[ $REKEY == yes ]]; then
		# held open until the echo is back (gnutls-cli's 2 s EOF grace)
		wait_for 60 size_ge cli.out "$(size_of want)" ||
			fail "gnutls-cli got $(size_of cli.out) of $(size_of want) echoed bytes: $(tail -n2 k.err)"
		exec 6>&-
		expect_exit "$KPID" 60 0 "ktlsctl listen --echo"
		wait_exit "$cpid" 20 || true
		check_channel
		same cli.out want "echo across the key update"
		has k.err "peer updated its keys" || fail "ktlsctl -v did not report the peer's key update"
		if [[ $1 == rekey ]]; then
			has k.err "asked us to update ours" || fail "the update_requested flag was not seen"
		fi
		[[ $HOST_DEBUG == 1 ]] && return 0
		(( $(tls_stat TlsRxRekeyOk) > rx0 )) || fail "TlsRxRekeyOk did not grow"
		if [[ $1 == rekey ]]; then
			(( $(tls_stat TlsTxRekeyOk) > tx0 )) ||
				fail "TlsTxRekeyOk did not grow: ktlsctl did not update its send key"
		fi
	else
		exec 6>&-
		expect_exit "$KPID" 60 10 "ktlsctl listen --echo on a kernel without rekey"
		grep -qi "cannot" k.err || fail "no 'cannot rekey' message: $(tail -n2 k.err)"
		wait_exit "$cpid" 20 || true
	fi
}

# openssl s_server's k / K commands against ktlsctl connect.
sc_keyupdate_s_server() {
	local p prime="0123456789abcdef-prime"
	port 0; p=$PORT
	ossl 1.3
	start_s_server "$p" "${OSSL[@]}"
	start_connect "$p" --tls1.3
	echo "$prime" >&8
	wait_for 30 has s_server.out "$prime" ||
		fail "s_server never received the first line: $(tail -n3 k.err)"
	check_channel
	echo k >&7
	nap 0.5
	if [[ $REKEY != yes ]]; then
		expect_exit "$KPID" 30 10 "ktlsctl connect on a kernel without rekey"
		grep -qi "cannot" k.err || fail "no 'cannot rekey' message: $(tail -n2 k.err)"
		exec 7>&-
		return 0
	fi
	echo "down-after-k-$$" >&7
	wait_for 20 has k.out "down-after-k-$$" ||
		fail "data s_server sent after KeyUpdate(not requested) never arrived: $(tail -n2 k.err)"
	nap 0.3
	echo K >&7
	nap 0.5
	echo "down-after-K-$$" >&7
	wait_for 20 has k.out "down-after-K-$$" ||
		fail "data s_server sent after KeyUpdate(requested) never arrived: $(tail -n2 k.err)"
	echo "up-after-K-$$" >&8
	wait_for 20 has s_server.out "up-after-K-$$" ||
		fail "s_server could not read ktlsctl's data after ktlsctl updated its key: $(tail -n3 s_server.out)"
	[[ $(count k.err "peer updated its keys") -ge 2 ]] ||
		fail "ktlsctl -v reported $(count k.err "peer updated its keys") peer key updates, want 2"
	has k.err "asked us to update ours" || fail "the update_requested flag was not seen"
	exec 8>&-
	expect_exit "$KPID" 30 0 "ktlsctl connect"
	exec 7>&-
}

# The KeyUpdate-behind-data poll pitfall (kernel-ktls.md §4): data records,
# a KeyUpdate and more data arrive together.  A read stops at the KeyUpdate
# after the kernel has decrypted it, and from then on poll() never reports
# POLLIN although recvmsg would return it: ktlsctl must keep reading until
# EAGAIN, or it hangs here.  ktlsctl is stopped while gnutls-cli sends, so
# that everything is queued before it reads anything.
sc_keyupdate_behind_data() {
	local a=$W/pool/txt8-a b=$W/pool/txt8-b prime="0123456789abcdef-prime"
	gprio 1.3
	LISTEN_STDIN=/dev/null
	start_listen --echo --tls1.3
	mkfifo cli.in
	gnutls_cli "$LPORT" "$PRIO" --inline-commands < cli.in > cli.out 2> cli.err 6>&- 7>&- 8>&- &
	local cpid=$!
	exec 6> cli.in
	echo "$prime" >&6
	wait_for 30 has cli.out "$prime" || fail "no echo before the test: $(tail -n3 k.err)"
	check_channel
	kill -STOP "$KPID"
	{ cat "$a"; echo "^rekey1^"; cat "$b"; } >&6
	# until everything is queued on ktlsctl's socket (Recv-Q stops growing)
	local q=-1 q2=0 i
	for i in $(seq 40); do
		nap 0.25
		q2=$(ss -Htn state established "sport = :$LPORT" | awk '{ print $1 }' | head -n1)
		[[ $q2 == "$q" && $q2 -gt 16384 ]] && break
		q=$q2
	done
	echo "queued $q2 bytes" > queued
	kill -CONT "$KPID"
	local want=$(( ${#prime} + 1 + $(size_of "$a") + $(size_of "$b") ))
	if [[ $REKEY == yes ]]; then
		wait_for 30 size_ge cli.out "$want" ||
			fail "ktlsctl hung: echoed $(size_of cli.out) of $want bytes (Recv-Q was $q2)"
		exec 6>&-
		expect_exit "$KPID" 30 0 "ktlsctl listen --echo"
		wait_exit "$cpid" 10 || true
		cat "$a" "$b" > want
		tail -c "$(size_of want)" cli.out > got
		same got want "echo across the queued key update"
	else
		expect_exit "$KPID" 30 10 "ktlsctl listen --echo on a kernel without rekey"
		exec 6>&-
		wait_exit "$cpid" 10 || true
	fi
}

# --- resumption: a saved session resumes ---------------------------------
sc_resume() {  # VERSION
	local p data=$W/pool/txt-4k
	port 0; p=$PORT
	gprio "$1"
	start_gnutls_serv "$p" "$PRIO"
	"$KTLSCTL" connect "localhost:$p" --cafile "$W/ca.pem" "${KTLS[@]}" -v --tls"$1" \
		--session-out sess < "$data" > k.out 2> k.err 6>&- 7>&- 8>&- &
	expect_exit $! 30 0 "ktlsctl connect --session-out"
	check_channel
	same k.out "$data" "echo in the first session"
	[[ -s sess ]] || fail "--session-out wrote no session: $(tail -n2 k.err)"
	"$KTLSCTL" connect "localhost:$p" --cafile "$W/ca.pem" "${KTLS[@]}" -v --tls"$1" \
		--session-in sess < "$data" > k2.out 2> k2.err 6>&- 7>&- 8>&- &
	expect_exit $! 30 0 "ktlsctl connect --session-in"
	check_channel k2.err
	has k2.err "session resumed from" ||
		fail "the saved session did not resume: $(grep -m2 -i -E 'session|resum' k2.err)"
	same k2.out "$data" "echo in the resumed session"
}

# --- key updates we start ourselves -----------------------------------------
# ktlsctl keyupdate PID [--request] (the control socket), against s_server:
# the peer must go on decrypting what we send under the new key, and after
# --request we must follow the peer's own update.
sc_local_keyupdate() {
	local p prime="0123456789abcdef-prime" tx0 rc
	port 0; p=$PORT
	ossl 1.3
	tx0=$(tls_stat TlsTxRekeyOk)
	start_s_server "$p" -quiet "${OSSL[@]}"
	start_connect "$p" --tls1.3
	echo "$prime" >&8
	wait_for 30 has s_server.out "$prime" ||
		fail "s_server never received the first line: $(tail -n3 k.err)"
	check_channel
	rc=0
	"$KTLSCTL" keyupdate "$KPID" > ku1.out 2> ku1.err 6>&- 7>&- 8>&- || rc=$?
	if [[ $REKEY == yes ]]; then
		[[ $rc -eq 0 ]] || fail "ktlsctl keyupdate exited $rc: $(cat ku1.err)"
		echo "up-after-keyupdate-$$" >&8
		wait_for 20 has s_server.out "up-after-keyupdate-$$" ||
			fail "s_server cannot read what ktlsctl sent under its new key: $(tail -n2 k.err)"
		rc=0
		"$KTLSCTL" keyupdate "$KPID" --request > ku2.out 2> ku2.err 6>&- 7>&- 8>&- || rc=$?
		[[ $rc -eq 0 ]] || fail "ktlsctl keyupdate --request exited $rc: $(cat ku2.err)"
		echo "up-after-request-$$" >&8
		wait_for 20 has s_server.out "up-after-request-$$" ||
			fail "s_server cannot read ktlsctl's data after the second update: $(tail -n2 k.err)"
		# (OpenSSL sends its answering KeyUpdate with its next write)
		echo "down-after-request-$$" >&7
		wait_for 20 has k.out "down-after-request-$$" ||
			fail "ktlsctl cannot read s_server's data under s_server's new key: $(tail -n2 k.err)"
		has k.err "peer updated its keys" ||
			fail "s_server's answering KeyUpdate never reached ktlsctl: $(tail -n3 k.err)"
		[[ $(count k.err "updated our send keys") -ge 2 ]] ||
			fail "ktlsctl -v reported $(count k.err "updated our send keys") own key updates, want 2"
		[[ $HOST_DEBUG == 1 ]] || (( $(tls_stat TlsTxRekeyOk) >= tx0 + 2 )) ||
			fail "TlsTxRekeyOk grew by $(( $(tls_stat TlsTxRekeyOk) - tx0 )), want 2"
	else
		# Refused before anything is sent; the session goes on.
		[[ $rc -eq 9 ]] || fail "ktlsctl keyupdate exited $rc on a kernel without rekey, want 9: $(cat ku1.err)"
		grep -qi "cannot" ku1.err || fail "no 'cannot update' reason: $(cat ku1.err)"
		echo "up-after-refusal-$$" >&8
		wait_for 20 has s_server.out "up-after-refusal-$$" ||
			fail "the session did not go on after the refused key update: $(tail -n2 k.err)"
		echo "down-after-refusal-$$" >&7
		wait_for 20 has k.out "down-after-refusal-$$" ||
			fail "no data from s_server after the refused key update: $(tail -n2 k.err)"
	fi
	exec 8>&-
	expect_exit "$KPID" 30 0 "ktlsctl connect"
	exec 7>&-
}

# --key-update-after N: ktlsctl updates its send key every N records on its
# own; gnutls-serv echoing everything proves it decrypted every record.
sc_key_update_after() {
	local p data=$W/pool/txt-a tx0
	port 0; p=$PORT
	gprio 1.3
	tx0=$(tls_stat TlsTxRekeyOk)
	start_gnutls_serv "$p" "$PRIO"
	"$KTLSCTL" connect "localhost:$p" --cafile "$W/ca.pem" "${KTLS[@]}" -v --tls1.3 \
		--key-update-after 2 < "$data" > k.out 2> k.err 6>&- 7>&- 8>&- &
	KPID=$!
	if [[ $REKEY == yes ]]; then
		expect_exit "$KPID" 60 0 "ktlsctl connect --key-update-after 2"
		check_channel
		same k.out "$data" "echo across our own key updates"
		has k.err "updated our send keys" || fail "ktlsctl -v reported no key update of its own"
		[[ $HOST_DEBUG == 1 ]] || (( $(tls_stat TlsTxRekeyOk) > tx0 )) || fail "TlsTxRekeyOk did not grow"
	else
		expect_exit "$KPID" 60 13 "ktlsctl connect --key-update-after 2 on a kernel without rekey"
		check_channel
		grep -qi "cannot update keys" k.err || fail "no 'cannot update keys' reason: $(tail -n2 k.err)"
	fi
}

# --- zero-copy data path ----------------------------------------------------
# connect sends a 4 MiB file by sendfile (or a pipe by splice); listen
# splices what it receives into a pipe.  With KEYS=N connect updates its
# keys every N records, so KeyUpdates (control records) arrive between
# spliced data records; a kernel without rekey must stop at exactly N full
# records from a file (exit 13), the metering being exact there.
sc_zerocopy() {  # INPUT(file|pipe) VERSION [KEYS]
	local in=$1 v=$2 keys=${3:-} size=$(( 4 << 20 )) want=big kargs=()
	head -c "$size" /dev/urandom > big
	[[ -n $keys ]] && kargs=(--key-update-after "$keys")
	mkfifo k.in
	{ "$KTLSCTL" listen 127.0.0.1:0 --cert "$W/srv.pem" --key "$W/srv.key" "${KTLS[@]}" -v \
		--tls"$v" < k.in 2> k.err 6>&- 7>&- 8>&-; echo $? > k.rc; } | cat > k.out &
	local lpid=$!
	exec 8> k.in
	wait_for 40 has k.err "listening on" || fail "ktlsctl listen did not start: $(head -c 300 k.err)"
	LPORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' k.err | head -n1)
	if [[ $in == file ]]; then
		"$KTLSCTL" connect "localhost:$LPORT" --cafile "$W/ca.pem" "${KTLS[@]}" -v --tls"$v" \
			"${kargs[@]}" < big > c.out 2> c.err 6>&- 7>&- 8>&- &
	else
		cat big | "$KTLSCTL" connect "localhost:$LPORT" --cafile "$W/ca.pem" "${KTLS[@]}" -v \
			--tls"$v" "${kargs[@]}" > c.out 2> c.err 6>&- 7>&- 8>&- &
	fi
	local cpid=$! crc=0
	if [[ -n $keys && $REKEY == no ]]; then
		expect_exit "$cpid" 120 13 "ktlsctl connect --key-update-after $keys on a kernel without rekey"
		grep -qi "cannot update keys" c.err || fail "no 'cannot update keys' reason: $(tail -n2 c.err)"
		head -c "$(size_of k.out)" big > want.part
		want=want.part
		if [[ $in == file ]]; then
			(( $(size_of k.out) == keys * 16384 )) ||
				fail "sendfile: $(size_of k.out) bytes under one key, want exactly $keys records of 16384"
		fi
	else
		# TLS 1.3 listen half-closes: its stdin ends once all is there.
		wait_for 120 size_ge k.out "$size" ||
			fail "listen got $(size_of k.out) of $size bytes: $(tail -n2 c.err) $(tail -n2 k.err)"
		exec 8>&-
		expect_exit "$cpid" 60 0 "ktlsctl connect (zero-copy $in)"
	fi
	exec 8>&-
	expect_exit "$lpid" 60 0 "ktlsctl listen | cat"
	[[ $(< k.rc) == 0 ]] || fail "ktlsctl listen exited with status $(< k.rc), expected 0: $(tail -n2 k.err)"
	same k.out "$want" "ktlsctl connect -> listen (zero-copy)"
	check_channel
	if [[ $HOST_DEBUG != 1 ]]; then
		local how=sendfile
		[[ $in == pipe ]] && how=splice
		has c.err "standard input by $how" ||
			fail "connect did not send by $how: $(grep -m1 'data path' c.err)"
		has k.err "standard output by splice" ||
			fail "listen did not splice to its stdout pipe: $(grep -m1 'data path' k.err)"
	fi
	if [[ -n $keys && $REKEY == yes ]]; then
		has k.err "peer updated its keys" || fail "listen saw no KeyUpdate between spliced records"
	fi
}

# A reader that goes away (EPIPE on the spliced pipe) ends the session
# like a write would: close_notify and exit 0.
sc_zerocopy_epipe() {
	head -c $(( 4 << 20 )) /dev/urandom > big
	LISTEN_STDIN=big
	start_listen --tls1.3
	"$KTLSCTL" connect "localhost:$LPORT" --cafile "$W/ca.pem" "${KTLS[@]}" -v --tls1.3 \
		< /dev/null 2> c.err 6>&- 7>&- 8>&- | head -c 1000 > c.out &
	local cpid=$!
	expect_exit "$cpid" 60 0 "ktlsctl connect | head -c 1000"
	head -c 1000 big > want
	same c.out want "the first 1000 bytes"
	wait_exit "$KPID" 60 || true
}

# --no-zerocopy on the same pipes: read and write.
sc_zerocopy_off() {
	local data=$W/pool/bin-a
	LISTEN_STDIN=$data
	start_listen --tls1.3 --no-zerocopy
	"$KTLSCTL" connect "localhost:$LPORT" --cafile "$W/ca.pem" "${KTLS[@]}" -v --tls1.3 \
		--no-zerocopy < /dev/null 2> c.err 6>&- 7>&- 8>&- | cat > c.out &
	expect_exit $! 60 0 "ktlsctl connect --no-zerocopy"
	expect_exit "$KPID" 60 0 "ktlsctl listen --no-zerocopy"
	same c.out "$data" "listen -> connect (copying)"
	has c.err "standard input by copy, standard output by copy" ||
		fail "--no-zerocopy still used zero copy: $(grep -m1 'data path' c.err)"
}

# --- IPv6: kTLS on an AF_INET6 socket --------------------------------------
sc_ipv6() {
	local p data=$W/pool/txt-4k
	port 0; p=$PORT
	gprio 1.3 AES-128-GCM
	start_gnutls_serv "$p" "$PRIO"
	"$KTLSCTL" connect "[::1]:$p" --sni localhost --cafile "$W/ca.pem" "${KTLS[@]}" -v --tls1.3 \
		< "$data" > k.out 2> k.err 6>&- 7>&- 8>&- &
	expect_exit $! 30 0 "ktlsctl connect [::1]"
	check_channel
	has k.err "::1" || fail "not connected over IPv6: $(grep -m1 connected k.err)"
	same k.out "$data" "echo over IPv6"
}

# --- ktlsctl selftest: the tool's own check, on a real kernel ---------------
# Every case must pass on the kernel channel (--require-kernel), on a kernel
# that cannot rekey as well: kTLS works there, only TLS 1.3 key updates do not.
sc_selftest() {
	local rc=0 req=(--require-kernel)
	[[ $HOST_DEBUG == 1 ]] && req=()
	"$KTLSCTL" selftest "${req[@]}" > st.out 2> st.err 6>&- 7>&- 8>&- || rc=$?
	[[ $rc -eq 0 ]] ||
		fail "ktlsctl selftest --require-kernel exited $rc: $(grep -E 'FAIL|passed|kernel TLS' st.out st.err | head -n4 | tr '\n' ' ')"
	[[ $HOST_DEBUG == 1 ]] && return 0
	has st.out "passed, 0 failed (record channel: kernel)" ||
		fail "selftest did not run every case on the kernel: $(tail -n2 st.out)"
}

# --- ktlsctl stats: the kernel's view of the session ------------------------
# With a session up, `ktlsctl stats` finds ktlsctl's kTLS socket through
# sock_diag (ULP "tls", version, cipher, owner) in JSON and in text.
sc_stats_sockets() {
	local p
	port 0; p=$PORT
	gprio 1.3 AES-128-GCM
	start_gnutls_serv "$p" "$PRIO"
	start_connect "$p" --tls1.3 --cipher AES-128-GCM
	echo "hello" >&8
	wait_for 20 size_ge k.out 6 || fail "no echo from gnutls-serv: $(tail -n3 k.err)"
	check_channel
	"$KTLSCTL" stats --json > stats.json 2> stats.err 6>&- 7>&- 8>&- ||
		fail "ktlsctl stats --json failed: $(cat stats.err)"
	"$KTLSCTL" stats > stats.out 2>> stats.err 6>&- 7>&- 8>&- ||
		fail "ktlsctl stats failed: $(cat stats.err)"
	exec 8>&-
	expect_exit "$KPID" 20 0 "ktlsctl connect"
	[[ $HOST_DEBUG == 1 ]] && return 0
	local comm=${KTLSCTL##*/}
	"$PY" - "$KPID" "$p" stats.json "${comm:0:15}" <<-'EOF' > stats.check 2>&1 || fail "ktlsctl stats --json: $(cat stats.check)"
	import json, sys
	pid, port, path, comm = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
	doc = json.load(open(path))
	socks = [s for s in doc["sockets"]["list"] if s.get("pid") == pid and s.get("remote_port") == port]
	if not socks:
	    sys.exit("no kTLS socket of pid %d to port %d in %s" % (pid, port, doc["sockets"]))
	s = socks[0]
	want = {"ulp": "tls", "version": "TLS1.3", "cipher": "aes-gcm-128", "tx": "sw", "rx": "sw", "comm": comm}
	bad = {k: s.get(k) for k, v in want.items() if s.get(k) != v}
	if bad:
	    sys.exit("socket fields differ: %s (want %s)" % (bad, want))
	if not doc["kernel"]["available"]["state"] == "yes":
	    sys.exit("kernel kTLS not available: %s" % doc["kernel"]["available"])
	EOF
	has stats.out "pid $KPID (${comm:0:15})" ||
		fail "ktlsctl stats (text) does not show the kTLS socket of pid $KPID: $(grep -A3 'kTLS sockets' stats.out | tr '\n' ' ')"
}

# --- on the kernel channel ktlsctl holds no key of its own ----------------
# tests/integration/test_secrets.py --kernel-channel: the peers log their
# secrets, the test derives every key and IV from them and counts the copies
# in the live ktlsctl (/proc/PID/mem) after the handover, after `ktlsctl
# stats` (its getsockopt(TLS_TX/RX) returns the keys) and after key updates
# where the kernel can rekey: only GnuTLS's own state may hold them.
sc_secrets_kernel() {
	local rc=0 t=${SELF%/*}/../integration/test_secrets.py mode=(--kernel-channel)
	# (on a machine without kTLS: the same check on the user-space channel)
	[[ $HOST_DEBUG == 1 ]] && mode=(-k "connect TLS1.3 AES-128-GCM")
	KTLSCTL_SECRETS_CERTS="$W/ca.pem:$W/srv.pem:$W/srv.key" KTLSCTL_SECRETS_REKEY=$REKEY \
	KTLSCTL_TEST_TIMEOUT_SCALE=$(( 3 * SCALE_PCT / 100 )) \
		"$PY" "$t" "${mode[@]}" > secrets.out 2>&1 6>&- 7>&- 8>&- || rc=$?
	cat secrets.out
	[[ $rc -eq 0 ]] ||
		fail "test_secrets.py ${mode[*]} exited $rc: $(grep -E '^(FAIL|SKIP| {4}[a-z])' secrets.out | head -n 6 | tr '\n' ' ')"
	grep -qE '^[1-9][0-9]* passed, 0 failed, 0 skipped$' secrets.out ||
		fail "test_secrets.py ${mode[*]} ran no case in full: $(tail -n 1 secrets.out)"
}

# --- an integration suite, whole, on the kernel channel --------------------
# The same cases the host runs on the user-space channel, with every
# ktlsctl on --ktls require (KTLSCTL_TEST_CHANNEL=kernel).
sc_suite() {  # FILE [SUITE ARGS...]
	local rc=0 t=${SELF%/*}/../integration/$1 channel=kernel
	shift
	[[ $HOST_DEBUG == 1 ]] && channel=user-space
	[[ -n ${SUITE_ONLY:-} ]] && set -- "$@" -k "$SUITE_ONLY"
	KTLSCTL_TEST_CHANNEL=$channel KTLSCTL_TEST_TIMEOUT_SCALE=$(( 3 * SCALE_PCT / 100 )) \
		"$PY" "$t" "$@" > suite.out 2>&1 6>&- 7>&- 8>&- || rc=$?
	cat suite.out
	# Each failed case with its evidence, for the VMLOG lines.
	awk '/^(PASS|SKIP) /{p=0} /^FAIL /{p=1} /^-- failed cases:/{p=0} p' suite.out > failures
	[[ $rc -eq 0 ]] ||
		fail "${t##*/} exited $rc: $(grep -E '^FAIL' suite.out | head -n 6 | tr '\n' ' ')"
	grep -qE '^[1-9][0-9]* passed, 0 failed, 0 skipped$' suite.out ||
		fail "${t##*/} ran no case in full: $(tail -n 1 suite.out)"
}

# --- the kernel is the one we think it is ---------------------------------
sc_rekey_capability() {
	[[ -z ${EXPECT_REKEY:-} ]] && return 0
	[[ $REKEY == "$EXPECT_REKEY" ]] ||
		fail "kernel rekey support is '$REKEY', this tier expects '$EXPECT_REKEY' for $(uname -r)"
}

# ============================================================ the table
# (names must not contain ": ", which separates a failure's reason)

CASES=()
MODE=solo
add() { CASES+=("$MODE|$*"); }   # MODE|TIMEOUT|NAME|FUNCTION ARGS...

add "20|kernel rekey support as expected|sc_rekey_capability"
add "60|kernel channel in use (tcp-ulp-tls, tls_stat, --ktls require)|sc_kernel_channel"
MODE=par
for v in 1.2 1.3; do
	for c in AES-128-GCM AES-256-GCM CHACHA20-POLY1305 AES-128-CCM; do
		add "90|data TLS$v $c connect->gnutls-serv|sc_connect_gnutls_serv $v $c"
		add "120|data TLS$v $c connect<->s_server|sc_connect_s_server $v $c"
		add "90|data TLS$v $c gnutls-cli->listen --echo|sc_gnutls_cli_listen $v $c"
		add "120|data TLS$v $c s_client->listen --echo|sc_s_client_listen $v $c"
	done
done
add "60|session tickets after the handover|sc_tickets"
add "60|close_notify ktlsctl first TLS1.2|sc_close_ktlsctl_first 1.2"
add "60|close_notify ktlsctl first TLS1.3|sc_close_ktlsctl_first 1.3"
add "60|close_notify peer first TLS1.2|sc_close_peer_first 1.2"
add "60|close_notify peer first TLS1.3 (half-close)|sc_close_peer_first 1.3"
add "60|peer dies mid-stream -> 8|sc_peer_dies"
add "60|resumption TLS1.2 (--session-out, --session-in)|sc_resume 1.2"
add "60|resumption TLS1.3 (--session-out, --session-in)|sc_resume 1.3"
add "60|data TLS1.3 over IPv6 (connect [::1]->gnutls-serv)|sc_ipv6"
add "120|zero-copy TLS1.3 sendfile -> splice|sc_zerocopy file 1.3"
add "120|zero-copy TLS1.2 splice -> splice|sc_zerocopy pipe 1.2"
add "120|zero-copy TLS1.3 sendfile with key updates every 64 records|sc_zerocopy file 1.3 64"
add "120|zero-copy TLS1.3 splice with key updates every 64 records|sc_zerocopy pipe 1.3 64"
add "60|zero-copy: the reader of the spliced pipe goes away -> 0|sc_zerocopy_epipe"
add "60|--no-zerocopy copies|sc_zerocopy_off"
MODE=solo
add "60|tampered record TLS1.3 -> 9|sc_tamper 1.3 flip"
add "60|tampered record TLS1.2 -> 9|sc_tamper 1.2 flip"
add "60|garbage record TLS1.3 -> 9|sc_tamper 1.3 garbage"
add "90|peer KeyUpdate not requested (gnutls-cli ^rekey1^)|sc_keyupdate_gnutls_cli rekey1"
add "90|peer KeyUpdate requested (gnutls-cli ^rekey^)|sc_keyupdate_gnutls_cli rekey"
add "90|peer KeyUpdate k and K (s_server) -> connect|sc_keyupdate_s_server"
add "90|KeyUpdate queued behind data (poll pitfall)|sc_keyupdate_behind_data"
add "90|local key update (ktlsctl keyupdate PID [--request], s_server)|sc_local_keyupdate"
add "90|local key update (--key-update-after 2, gnutls-serv)|sc_key_update_after"
add "120|ktlsctl selftest --require-kernel|sc_selftest"
add "60|ktlsctl stats lists the kTLS socket (sock_diag)|sc_stats_sockets"
add "120|no key, IV or secret in ktlsctl memory outside GnuTLS (test_secrets.py)|sc_secrets_kernel"
add "900|end of input against HTTP and echo servers, every --eof mode (test_eof.py)|sc_suite test_eof.py"
add "900|record size limits on the wire, both roles, padding (test_recordsize.py)|sc_suite test_recordsize.py"

# ================================================================ runner

# One scenario, in its own directory: bash scenarios.sh --case N.
if [[ ${1:-} == --case ]]; then
	CASE_INDEX=$2
	IFS='|' read -r _ _ _ cmd <<< "${CASES[$CASE_INDEX]}"
	REKEY=$(kernel_rekey)
	trap '' PIPE   # a peer that is gone must not kill the scenario
	mkfifo nap.fifo
	exec {NAPFD}<> nap.fifo
	if [[ ${XTRACE:-0} == 1 ]]; then   # debugging: a timed trace in run.log
		PS4='+ ${EPOCHREALTIME} '
		set -x
	fi
	trap 'rc=$?; set +e; exec 6>&- 7>&- 8>&- 2>/dev/null; kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; exit $rc' EXIT
	set -e
	$cmd
	exit 0
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/ktlsctl-scen.XXXXXX")
export W

# Certificates: an ECDSA CA and server certificate for "localhost" (TLS 1.2
# AES-128-CCM needs ECDSA).  Generated here, in the guest's tmpfs.
gen_certs() {
	cat > "$W/ca.tmpl" <<-EOF
	cn = "ktlsctl VM test CA"
	ca
	cert_signing_key
	expiration_days = 2
	EOF
	cat > "$W/srv.tmpl" <<-EOF
	cn = "localhost"
	dns_name = "localhost"
	ip_address = "127.0.0.1"
	tls_www_server
	signing_key
	expiration_days = 2
	EOF
	certtool --generate-privkey --key-type ecdsa --outfile "$W/ca.key" &&
	certtool --generate-self-signed --load-privkey "$W/ca.key" --template "$W/ca.tmpl" \
		--outfile "$W/ca.pem" &&
	certtool --generate-privkey --key-type ecdsa --outfile "$W/srv.key" &&
	certtool --generate-certificate --load-privkey "$W/srv.key" --load-ca-certificate "$W/ca.pem" \
		--load-ca-privkey "$W/ca.key" --template "$W/srv.tmpl" --outfile "$W/srv.pem"
}

# A TCP proxy that, once the client has sent ARM application-data records
# (its Finished counts in TLS 1.3), corrupts the next record from the
# server: "flip" flips one ciphertext byte, "garbage" replaces the record
# with one whose header has the wrong version bytes.
cat > "$W/mitm.py" <<'EOF'
import select, socket, sys
lport, uport, arm, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport)); ls.listen(1)
c, _ = ls.accept()
s = socket.create_connection(("127.0.0.1", uport))
bufs = {c: b"", s: b""}
client_app = 0
done = False
def records(buf):
    out = []
    while len(buf) >= 5:
        n = 5 + int.from_bytes(buf[3:5], "big")
        if len(buf) < n:
            break
        out.append(buf[:n]); buf = buf[n:]
    return out, buf
while True:
    r, _, _ = select.select([c, s], [], [], 60)
    if not r:
        break
    for src in r:
        dst = s if src is c else c
        try:
            d = src.recv(65536)
        except OSError:
            d = b""
        if not d:
            sys.exit(0)
        recs, bufs[src] = records(bufs[src] + d)
        for rec in recs:
            if src is c and rec[0] == 23:
                client_app += 1
            elif src is s and rec[0] == 23 and client_app >= arm and not done:
                done = True
                if mode == "flip":
                    b = bytearray(rec); b[5 + (len(b) - 5) // 2] ^= 0x01; rec = bytes(b)
                else:
                    rec = b"\x17\x01\x01\x00\x20" + b"\x5a" * 32
                print("tampered a %d-byte server record (%s)" % (len(rec), mode), flush=True)
            dst.sendall(rec)
EOF

echo "VMINFO scenarios on $(uname -r): ktlsctl $("$KTLSCTL" --version 2>&1 | head -n1), kernel rekey: $(kernel_rekey)"
if ! gen_certs > "$W/certs.log" 2>&1; then
	echo "VMRESULT FAIL certificates: certtool failed: $(tail -n3 "$W/certs.log" | tr '\n' ' ')"
	exit 0
fi
make_pool
for tool in gnutls-serv gnutls-cli openssl certtool ss "$PY"; do
	command -v "$tool" >/dev/null ||
		echo "VMRESULT FAIL tools: $tool is missing on the host (install gnutls-bin, openssl, iproute2, python3)"
done

# One scenario, start to verdict: its output lines go to $d/verdict.
run_one() {
	local i=$1 t name d rc=0 ms san reason f
	IFS='|' read -r _ t name _ <<< "${CASES[$i]}"
	d=$W/case$i
	mkdir -p "$d"
	now_ms
	local t0=$NOW_MS
	(cd "$d" && exec timeout -k 5 "$(secs "$t")" bash "$SELF" --case "$i" > run.log 2>&1) || rc=$?
	now_ms
	ms=$(( NOW_MS - t0 ))
	# A sanitizer report in any ktlsctl stderr fails the scenario.
	san=$(grep -lE 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$d"/k.err 2>/dev/null | head -n1)
	if [[ $rc -eq 0 && -z $san ]]; then
		echo "VMRESULT PASS $name ($((ms / 1000)).$((ms % 1000 / 100))s)" > "$d/verdict"
		return 0
	fi
	if [[ -n $san ]]; then
		reason="sanitizer report in ktlsctl's stderr"
	elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
		reason="hung: killed after $(secs "$t")s"
	else
		reason=$(head -c 400 "$d/reason" 2>/dev/null | tr '\n' ' ')
		[[ -n $reason ]] || reason="scenario script failed (status $rc)"
	fi
	{
		echo "VMRESULT FAIL $name: $reason"
		for f in run.log k.err reason cli.err gnutls-cli.log s_server.err mitm.out mitm.err queued st.out stats.out stats.check failures; do
			[[ -s $d/$f ]] || continue
			tail -n "$([[ $f == failures ]] && echo 400 || echo 15)" "$d/$f" |
				sed "s|^|VMLOG $name: $f: |"
		done
	} > "$d/verdict"
}

# Scenarios marked "par" (they assert nothing about global counters) run
# PARALLEL at a time: they mostly wait on each other's processes, and the
# guest's CPU is better used overlapping them.  The others run alone.
PARALLEL=${PARALLEL:-3}
declare -A running=()
reap() {  # wait for one running scenario and print its verdict
	local pid
	wait -n -p pid "${!running[@]}" 2>/dev/null || true
	[[ -n $pid && -n ${running[$pid]:-} ]] || return 0
	cat "$W/case${running[$pid]}/verdict"
	unset "running[$pid]"
}
now_ms
t_all=$NOW_MS
for i in "${!CASES[@]}"; do
	IFS='|' read -r mode _ name _ <<< "${CASES[$i]}"
	[[ -z ${ONLY:-} || $name == *"$ONLY"* ]] || continue
	if [[ $mode == par && $PARALLEL -gt 1 ]]; then
		while (( ${#running[@]} >= PARALLEL )); do reap; done
		run_one "$i" &
		running[$!]=$i
	else
		while (( ${#running[@]} > 0 )); do reap; done
		run_one "$i"
		cat "$W/case$i/verdict"
	fi
done
while (( ${#running[@]} > 0 )); do reap; done
now_ms
echo "VMINFO scenarios took $(( (NOW_MS - t_all) / 1000 ))s (up to $PARALLEL at a time)"
exit 0
exit
}
