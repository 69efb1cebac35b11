# fish completion for ktlsctl(1)
# Installed as .../fish/vendor_completions.d/ktlsctl.fish
#
# ktlsctl itself says what fits: `ktlsctl --complete WORD...` (see
# cli/complete.h in the source) prints the candidates for the last WORD,
# or :file / :host.  This function only hands it the words and fish the
# answer.  Without a ktlsctl that answers, file names are completed.
function __ktlsctl_complete
    set -l words (commandline -opc)
    set -l token (commandline -ct)
    set -l prog $words[1]
    command -q -- $prog; or set prog ktlsctl
    set -l out (command -q -- $prog; and $prog --complete $words[2..-1] "$token" 2>/dev/null)
    or begin
        __fish_complete_path "$token"
        return
    end
    # fish replaces the whole token: "--option=" stays before a file name.
    set -l keep (string match -r -- '^--[^=]*=' "$token")
    set -l part (string replace -r -- '^--[^=]*=' '' "$token")
    for line in $out
        switch $line
            case :file
                __fish_complete_path "$part" | string replace -r -- '^' "$keep"
            case :host
                __fish_print_hostnames | string replace -r -- '^' "$keep"
            case '*'
                printf '%s\n' $line
        end
    end
end

complete -c ktlsctl -f -a '(__ktlsctl_complete)'
