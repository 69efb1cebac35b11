#!/bin/bash
# tests/vm/fetch-kernels.sh: fetch and cache the stock Debian kernels the VM
# tier boots.
#
#   debian12   Debian 12's linux-image-amd64 -> its versioned 6.1 package:
#              kTLS without TLS 1.3 rekey.
#   unstable   Debian unstable's generic linux-image-amd64 (it has 9p, the
#              cloud flavour does not): a current kernel with kTLS rekey
#              (Linux >= 6.14).
#
# Versioned package names are resolved at run time with apt-cache depends.
# Both come through apt state directories of this script's own inside the
# cache, whose sources lists reuse the Debian mirror already configured on
# this machine (read from /etc/apt/sources.list and /etc/apt/sources.list.d
# at run time; override with KTLSCTL_VM_MIRROR / KTLSCTL_VM_SECURITY_MIRROR).
# The system's apt configuration and state are never touched.  Release
# files are verified against /usr/share/keyrings/debian-archive-keyring.gpg
# (signed-by; override with KTLSCTL_VM_KEYRING).
#
# Cache: ${KTLSCTL_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktlsctl-vm},
# outside the source tree.  Each kernel is unpacked (dpkg -x) into
# CACHE/LABEL/root and described by CACHE/LABEL/kernel.env; once both are
# there, a run does no network access at all.  --refresh (or
# KTLSCTL_VM_REFRESH=1) resolves the newest packages again and fetches them
# if they changed.
#
# Usage: fetch-kernels.sh [--refresh] [LABEL...]      (default: all)
# Prints one "kernel LABEL DIR KVER PACKAGE VERSION" line per kernel on
# stdout (progress goes to stderr).  Exit 0 when every kernel asked for is
# in the cache, 1 otherwise (the reason on stderr).
set -euo pipefail

ALL_LABELS=(debian12 unstable)
CACHE=${KTLSCTL_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktlsctl-vm}
KEYRING_DEFAULT=/usr/share/keyrings/debian-archive-keyring.gpg

refresh=${KTLSCTL_VM_REFRESH:-0}
labels=()
for a in "$@"; do
	case $a in
	--refresh) refresh=1 ;;
	-h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	debian12|unstable) labels+=("$a") ;;
	*) echo "fetch-kernels: unknown argument '$a'" >&2; exit 2 ;;
	esac
done
[[ ${#labels[@]} -gt 0 ]] || labels=("${ALL_LABELS[@]}")

log() { echo "fetch-kernels: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in dpkg depmod; do
	command -v "$tool" >/dev/null || die "'$tool' not found (install: dpkg kmod)"
done

# ------------------------------------------------------------ the cache

# The kernel in CACHE/LABEL, if complete: prints its line.
cached_line() {
	local d=$CACHE/$1
	[[ -f $d/ok && -f $d/kernel.env ]] || return 1
	(
		# shellcheck disable=SC1091
		. "$d/kernel.env"
		[[ -f $d/root/$VMLINUZ && -d $d/root/$MODDIR ]] || exit 1
		echo "kernel $1 $d $KVER $PACKAGE $PKGVERSION"
	)
}

# ---------------------------------------------- the mirror of this machine

# Prints "URI SUITE..." for every enabled Debian-style entry in the system's
# apt sources (one-line and deb822 formats); comments and disabled entries
# are skipped.  Nothing is written anywhere.
system_sources() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		sed -e 's/#.*//' "$f" | awk '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				uri = $i; suite = $(i + 1)
				if (uri != "" && suite != "") print uri, suite
			}'
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		awk '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "" && suites != "") {
					n = split(uris, u, " ")
					for (j = 1; j <= n; j++) print u[j], suites
				}
				types = ""; uris = ""; suites = ""; enabled = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			{
				key = tolower($1); sub(/:$/, "", key)
				val = $0; sub(/^[^:]*:[ \t]*/, "", val)
				if (key == "types") types = val
				else if (key == "uris") uris = val
				else if (key == "suites") suites = val
				else if (key == "enabled") enabled = tolower(val)
			}
			END { flush() }' "$f"
	done
}

# The Debian archive mirror (an entry with a plain release suite, not a
# security one) and the security mirror, from the system's sources.
find_mirrors() {
	MIRROR=${KTLSCTL_VM_MIRROR:-}
	SECURITY_MIRROR=${KTLSCTL_VM_SECURITY_MIRROR:-}
	local uri suites s
	while read -r uri suites; do
		for s in $suites; do
			if [[ $s == *-security || $s == */updates ]]; then
				[[ -n $SECURITY_MIRROR ]] || SECURITY_MIRROR=$uri
			elif [[ $s != *-* && $uri != *security* ]]; then
				[[ -n $MIRROR ]] || MIRROR=$uri
			fi
		done
	done < <(system_sources)
	[[ -n $MIRROR ]] || die "no Debian mirror found in /etc/apt/sources.list{,.d/}: set KTLSCTL_VM_MIRROR to a Debian archive URI"
	MIRROR=${MIRROR%/}
	SECURITY_MIRROR=${SECURITY_MIRROR%/}
}

KEYRING=${KTLSCTL_VM_KEYRING:-$KEYRING_DEFAULT}

# ---------------------------------------------- an apt of our own, per suite

apt_opts() {
	local a=$CACHE/apt/$1
	printf '%s\n' \
		-o "Dir::Etc::sourcelist=$a/sources.list" \
		-o "Dir::Etc::sourceparts=-" \
		-o "Dir::Etc::preferences=$a/preferences" \
		-o "Dir::Etc::preferencesparts=$a/preferences.d" \
		-o "Dir::State=$a/state" \
		-o "Dir::State::Lists=$a/lists" \
		-o "Dir::State::status=$a/status" \
		-o "Dir::Cache=$a/cache" \
		-o "APT::Sandbox::User=root" \
		-o "APT::Get::List-Cleanup=1" \
		-o "Acquire::Retries=3" \
		-o "Debug::NoLocking=1"
}

apt_setup() {
	local label=$1 a=$CACHE/apt/$1
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/state" "$a/preferences.d"
	: > "$a/status"
	[[ -r $KEYRING ]] || die "keyring $KEYRING not found (install debian-archive-keyring, or set KTLSCTL_VM_KEYRING)"
	local opt="[signed-by=$KEYRING]"
	case $label in
	debian12)
		{
			echo "deb $opt $MIRROR bookworm main"
			echo "deb $opt $MIRROR bookworm-updates main"
			[[ -z $SECURITY_MIRROR ]] || echo "deb $opt $SECURITY_MIRROR bookworm-security main"
		} > "$a/sources.list" ;;
	unstable)
		echo "deb $opt $MIRROR unstable main" > "$a/sources.list" ;;
	esac
}

apt_run() {  # apt_run LABEL apt-get|apt-cache ARGS...
	local label=$1 cmd=$2
	shift 2
	local opts
	mapfile -t opts < <(apt_opts "$label")
	"$cmd" "${opts[@]}" "$@"
}

# ------------------------------------------------------------ one kernel

# The versioned image package that linux-image-amd64 depends on.
resolve_image() {
	apt_run "$1" apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

fetch_one() {
	local label=$1 d=$CACHE/$1
	log "$label: resolving linux-image-amd64 (mirror $MIRROR)"
	apt_setup "$label"
	if ! apt_run "$label" apt-get -q update >"$CACHE/apt/$label/update.log" 2>&1; then
		cat "$CACHE/apt/$label/update.log" >&2
		die "$label: apt-get update failed"
	fi
	if grep -qE '^(W|E): ' "$CACHE/apt/$label/update.log"; then
		grep -E '^(W|E): ' "$CACHE/apt/$label/update.log" >&2
	fi
	local image
	image=$(resolve_image "$label")
	[[ -n $image ]] || die "$label: linux-image-amd64 does not depend on a versioned linux-image-* package"
	local version
	version=$(apt_run "$label" apt-cache show --no-all-versions "$image" |
		  awk '/^Version:/ { print $2; exit }')
	# The image package itself, plus (newer Debian) the separate packages
	# that hold the kernel binary and its modules.
	local pkgs=("$image") dep
	while read -r dep; do
		pkgs+=("$dep")
	done < <(apt_run "$label" apt-cache depends "$image" 2>/dev/null |
		 awk '$1 == "Depends:" && $2 ~ /^linux-(base|binary|modules)-[0-9]/ { print $2 }')

	if [[ -f $d/ok ]] && grep -qxF "PKGVERSION='$version'" "$d/kernel.env" &&
	   grep -qxF "PACKAGE='$image'" "$d/kernel.env"; then
		log "$label: $image $version already cached"
		return 0
	fi

	local tmp=$d.new
	rm -rf "$tmp"
	mkdir -p "$tmp/debs" "$tmp/root"
	log "$label: downloading ${pkgs[*]} ($version)"
	if ! (cd "$tmp/debs" && apt_run "$label" apt-get -q download "${pkgs[@]}") >"$tmp/download.log" 2>&1; then
		cat "$tmp/download.log" >&2
		rm -rf "$tmp"
		die "$label: apt-get download failed"
	fi
	local deb
	for deb in "$tmp"/debs/*.deb; do
		log "$label: unpacking $(basename "$deb") ($(du -h "$deb" | cut -f1))"
		dpkg -x "$deb" "$tmp/root"
	done
	rm -rf "$tmp/debs"

	# Where the kernel and its modules landed: boot/ and lib/modules/ on
	# Debian 12, usr/lib/modules/KVER/ (vmlinuz inside) on newer Debian.
	local moddir kver vmlinuz
	local m
	moddir=
	for m in "$tmp"/root/lib/modules/* "$tmp"/root/usr/lib/modules/*; do
		if [[ -d $m && ! -L $m ]]; then
			moddir=${m#"$tmp/root/"}
			break
		fi
	done
	[[ -n $moddir ]] || die "$label: no modules directory in ${pkgs[*]}"
	kver=$(basename "$moddir")
	if [[ -f $tmp/root/$moddir/vmlinuz ]]; then
		vmlinuz=$moddir/vmlinuz
	elif [[ -f $tmp/root/boot/vmlinuz-$kver ]]; then
		vmlinuz=boot/vmlinuz-$kver
	else
		die "$label: no vmlinuz for $kver in ${pkgs[*]}"
	fi
	# kmod on the host looks in ROOT/lib/modules only.
	if [[ $moddir == usr/* && ! -e $tmp/root/lib/modules/$kver ]]; then
		mkdir -p "$tmp/root/lib/modules"
		ln -s "../../$moddir" "$tmp/root/lib/modules/$kver"
	fi
	depmod -b "$tmp/root" "$kver" || die "$label: depmod failed for $kver"

	cat > "$tmp/kernel.env" <<-EOF
	LABEL='$label'
	KVER='$kver'
	PACKAGE='$image'
	PKGVERSION='$version'
	PACKAGES='${pkgs[*]}'
	VMLINUZ='$vmlinuz'
	MODDIR='lib/modules/$kver'
	FETCHED='$(date -u +%Y-%m-%dT%H:%M:%SZ)'
	EOF
	touch "$tmp/ok"
	rm -rf "$d"
	mv "$tmp" "$d"
	log "$label: fetched $image $version (kernel $kver)"
}

# ---------------------------------------------------------------- main

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 || die "cannot lock $CACHE/.lock"

need=()
for l in "${labels[@]}"; do
	if [[ $refresh == 1 ]] || ! cached_line "$l" >/dev/null; then
		need+=("$l")
	fi
done
if [[ ${#need[@]} -gt 0 ]]; then
	command -v apt-get >/dev/null || die "apt-get not found: cannot fetch Debian kernels"
	find_mirrors
	for l in "${need[@]}"; do
		fetch_one "$l"
	done
fi
status=0
for l in "${labels[@]}"; do
	if line=$(cached_line "$l"); then
		echo "$line"
		set -- $line
		log "$l: $5 $6 (kernel $4) in $3"
	else
		log "$l: not in the cache"
		status=1
	fi
done
exit $status
