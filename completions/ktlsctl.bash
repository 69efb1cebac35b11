# bash completion for ktlsctl(1)                          -*- shell-script -*-
# Installed as .../bash-completion/completions/ktlsctl; also works when
# sourced by hand without the bash-completion package.

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
		connect | listen | selftest)
			sub=${words[i]}
			break
			;;
		esac
	done

	local ciphers="AES-128-GCM AES-256-GCM CHACHA20-POLY1305 AES-128-CCM"
	local common="--tls1.2 --tls1.3 --cipher --priority --ktls
		--handshake-timeout --cafile --cert --key --commands --crlf
		--key-update-after -q --quiet -v --verbose -h --help"
	local opts

	if [[ $sub == connect || $sub == listen ]]; then
		case $prev in
		--ktls)
			mapfile -t COMPREPLY < <(compgen -W "auto require off" -- "$cur")
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
		--priority | --handshake-timeout | --connect-timeout | --sni | --alpn | \
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
		opts="-v --verbose -q --quiet -h --help"
		;;
	*)
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "-h --help -V --version" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "connect listen selftest" -- "$cur")
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
