# bash completion for ktlsctl(1)                          -*- shell-script -*-
# Installed as .../bash-completion/completions/ktlsctl; also works when
# sourced by hand without the bash-completion package.
#
# ktlsctl itself says what fits: `ktlsctl --complete WORD...` (see
# cli/complete.h in the source) prints the candidates for the last WORD,
# or :file / :host.  This file only hands it the words and bash the answer.
# Without a ktlsctl that answers, bash completes file names, as it would
# with no completion at all.

_ktlsctl()
{
	local prog=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} out line i
	local -a words=()

	# COMP_WORDBREAKS splits "--option=value" and "host:443" into three
	# words; ktlsctl wants them whole.
	for ((i = 1; i <= COMP_CWORD; i++)); do
		if ((i > 1)) && [[ ${COMP_WORDS[i]} == [=:] || ${COMP_WORDS[i - 1]} == [=:] ]]; then
			words[-1]+=${COMP_WORDS[i]}
		else
			words+=("${COMP_WORDS[i]}")
		fi
	done
	[[ $cur == [=:] ]] && cur=
	# What bash keeps of the word: all but what it completes, $cur.
	local keep=${words[-1]%"$cur"}

	command -v "$prog" >/dev/null 2>&1 || prog=ktlsctl
	if ! out=$("$prog" --complete "${words[@]}" 2>/dev/null); then
		compopt -o default 2>/dev/null
		COMPREPLY=()
		return
	fi
	COMPREPLY=()
	while IFS= read -r line; do
		case $line in
		'') ;;
		:file)
			if declare -F _filedir >/dev/null; then
				_filedir
			else
				compopt -o filenames 2>/dev/null
				mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen -f -- "$cur")
			fi
			;;
		:host)
			# HOST:PORT goes on with the port
			compopt -o nospace 2>/dev/null
			mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen -A hostname -- "$cur")
			;;
		*)
			line=${line%%$'\t'*}
			COMPREPLY+=("${line#"$keep"}")
			;;
		esac
	done <<<"$out"
	# a value ending in '=' wants its parameter right after it
	if ((${#COMPREPLY[@]} == 1)) && [[ ${COMPREPLY[0]} == *= ]]; then
		compopt -o nospace 2>/dev/null
	fi
}
complete -F _ktlsctl ktlsctl

# ex: filetype=sh
