# bash completion for ktlsctl(1)                          -*- shell-script -*-
# Installed as .../bash-completion/completions/ktlsctl; also works when
# sourced by hand without the bash-completion package.

# The PIDs of the running sessions: their control sockets, PID.sock, in
# $XDG_RUNTIME_DIR/ktlsctl when XDG_RUNTIME_DIR is absolute, else in
# /tmp/ktlsctl-UID.
_ktlsctl_pids()
{
	local dir f
	if [[ ${XDG_RUNTIME_DIR-} == /* ]]; then
		dir=$XDG_RUNTIME_DIR/ktlsctl
	else
		dir=/tmp/ktlsctl-${EUID:-$(id -u)}
	fi
	for f in "$dir"/*.sock; do
		[[ -S $f ]] || continue
		f=${f##*/}
		f=${f%.sock}
		[[ $f =~ ^[0-9]+$ ]] && printf '%s\n' "$f"
	done
}

_ktlsctl()
{
	local cur prev cword i sub=
	local -a words
	words=("${COMP_WORDS[@]}")
	cword=$COMP_CWORD
	cur=${words[cword]}
	prev=
	((cword > 0)) && prev=${words[cword - 1]}

	# COMP_WORDBREAKS splits "--opt=value" into "--opt" "=" "value".
	if [[ $cur == = ]]; then
		cur=
	elif [[ $prev == = ]] && ((cword > 1)); then
		prev=${words[cword - 2]}
	fi

	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		connect | listen | selftest | stats | keyupdate | tickets)
			sub=${words[i]}
			break
			;;
		esac
	done

	local ciphers="AES-128-GCM AES-256-GCM CHACHA20-POLY1305 AES-128-CCM"
	local common="--tls1.2 --tls1.3 --cipher --priority --ktls
		--handshake-timeout --cafile --cert --key --commands --crlf
		--key-update-after --no-zerocopy --eof --record-size-limit -q --quiet -v --verbose -h --help"
	local opts

	if [[ $sub == connect || $sub == listen ]]; then
		case $prev in
		--ktls)
			mapfile -t COMPREPLY < <(compgen -W "auto require off" -- "$cur")
			return
			;;
		--eof)
			mapfile -t COMPREPLY < <(compgen -W "linger linger= wait close" -- "$cur")
			[[ ${COMPREPLY[0]:-} == linger= ]] && compopt -o nospace 2>/dev/null
			return
			;;
		--cipher)
			mapfile -t COMPREPLY < <(compgen -W "$ciphers" -- "${cur^^}")
			return
			;;
		--cafile | --cert | --key | --session-in | --session-out)
			if declare -F _filedir >/dev/null; then
				_filedir
			else
				compopt -o filenames 2>/dev/null
				mapfile -t COMPREPLY < <(compgen -f -- "$cur")
			fi
			return
			;;
		--priority | --handshake-timeout | --connect-timeout | --sni | --alpn | --record-size-limit | \
			--key-update-after)
			return
			;;
		esac
	fi

	case $sub in
	connect)
		opts="$common --connect-timeout --insecure --sni --alpn
			--session-in --session-out"
		;;
	listen)
		opts="$common --echo -k --keep-open --verify-client"
		;;
	selftest)
		opts="--json --require-kernel -v --verbose -q --quiet -h --help"
		;;
	stats | keyupdate | tickets)
		[[ $sub == stats && $prev == --watch ]] && return
		case $sub in
		stats) opts="--json --watch -q --quiet -v --verbose -h --help" ;;
		keyupdate) opts="--request -q --quiet -h --help" ;;
		tickets) opts="--json -h --help" ;;
		esac
		if [[ $cur != -* ]]; then
			# One PID: offer it until one has been given.
			local w j=0
			for ((i = i + 1; i < cword; i++)); do
				w=${words[i]}
				if [[ $w == --watch ]]; then ((i += 1)); continue; fi
				[[ $w =~ ^[0-9]+$ ]] && j=1
			done
			((j)) || mapfile -t COMPREPLY < <(compgen -W "$(_ktlsctl_pids)" -- "$cur")
			return
		fi
		;;
	*)
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "-h --help -V --version" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "connect listen selftest stats keyupdate tickets" -- "$cur")
		fi
		return
		;;
	esac

	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
	fi
}
complete -F _ktlsctl ktlsctl

# ex: filetype=sh
