# fish completion for ktlsctl(1)
# Installed as .../fish/vendor_completions.d/ktlsctl.fish

set -l subcommands connect listen selftest stats keyupdate tickets

# The PIDs of the running sessions: their control sockets, PID.sock, in
# $XDG_RUNTIME_DIR/ktlsctl when XDG_RUNTIME_DIR is absolute, else in
# /tmp/ktlsctl-UID.
function __ktlsctl_pids
    set -l dir /tmp/ktlsctl-(id -u)
    if string match -q '/*' -- "$XDG_RUNTIME_DIR"
        set dir $XDG_RUNTIME_DIR/ktlsctl
    end
    for f in $dir/*.sock
        test -S $f; or continue
        string replace -r '^.*/([0-9]+)\.sock$' '$1' -- $f
    end
end

# True until the PID of stats, keyupdate or tickets has been given.
function __ktlsctl_needs_pid
    set -l args (commandline -opc)
    set -l skip 0
    for a in $args[3..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        test "$a" = --watch; and set skip 1; and continue
        string match -qr '^[0-9]+$' -- $a; and return 1
    end
    return 0
end
set -l session '__fish_seen_subcommand_from connect listen'

complete -c ktlsctl -f

# Before a subcommand
complete -c ktlsctl -n "not __fish_seen_subcommand_from $subcommands" -a connect -d 'Connect to a TLS server'
complete -c ktlsctl -n "not __fish_seen_subcommand_from $subcommands" -a listen -d 'Accept TLS connections'
complete -c ktlsctl -n "not __fish_seen_subcommand_from $subcommands" -a selftest -d 'Check kernel TLS on this machine over loopback'
complete -c ktlsctl -n "not __fish_seen_subcommand_from $subcommands" -a stats -d 'kTLS on this machine and the running sessions'
complete -c ktlsctl -n "not __fish_seen_subcommand_from $subcommands" -a keyupdate -d 'Make a running session update its keys'
complete -c ktlsctl -n "not __fish_seen_subcommand_from $subcommands" -a tickets -d 'List the session tickets of a running session'
complete -c ktlsctl -n "not __fish_seen_subcommand_from $subcommands" -s h -l help -d 'Show help'
complete -c ktlsctl -n "not __fish_seen_subcommand_from $subcommands" -s V -l version -d 'Show the version'

# connect and listen
complete -c ktlsctl -n $session -l tls1.2 -d 'Allow only TLS 1.2'
complete -c ktlsctl -n $session -l tls1.3 -d 'Allow only TLS 1.3'
complete -c ktlsctl -n $session -l cipher -x -a 'AES-128-GCM AES-256-GCM CHACHA20-POLY1305 AES-128-CCM' -d 'Allow only this cipher'
complete -c ktlsctl -n $session -l priority -x -d 'GnuTLS priority string'
complete -c ktlsctl -n $session -l ktls -x -a "auto\t'The kernel when it can, else user space' require\t'The kernel, or fail' off\t'Always the user-space channel'" -d 'Record channel after the handshake'
complete -c ktlsctl -n $session -l handshake-timeout -x -d 'Handshake timeout in seconds (default 30)'
complete -c ktlsctl -n $session -l cafile -r -F -d 'CA certificates to verify the peer with (PEM)'
complete -c ktlsctl -n $session -l cert -r -F -d 'Our certificate chain (PEM)'
complete -c ktlsctl -n $session -l key -r -F -d 'Our private key (PEM)'
complete -c ktlsctl -n $session -l commands -d 'Lines starting with / are session commands in pipe mode too'
complete -c ktlsctl -n $session -l crlf -d 'End the lines typed at a terminal with CR LF'
complete -c ktlsctl -n $session -l key-update-after -x -d 'Update TLS 1.3 send keys every N records'
complete -c ktlsctl -n $session -l no-zerocopy -d 'Copy through read and write instead of sendfile and splice'
complete -c ktlsctl -n $session -l record-size-limit -x -d 'Announce an RFC 8449 record size limit (bytes)'
complete -c ktlsctl -n $session -l eof -x -a "linger\t'Once the peer closes or is quiet for 2 s (linger=SECS)' wait\t'Once the peer closes' close\t'At once'" -d 'When to send close_notify after the end of input'
complete -c ktlsctl -n $session -s q -l quiet -d 'No notices on stderr'
complete -c ktlsctl -n $session -s v -l verbose -d 'Handshake summary and session events on stderr'
complete -c ktlsctl -n "__fish_seen_subcommand_from $subcommands" -s h -l help -d 'Show help'

# connect only
complete -c ktlsctl -n '__fish_seen_subcommand_from connect' -l connect-timeout -x -d 'Connect timeout in seconds (default 10)'
complete -c ktlsctl -n '__fish_seen_subcommand_from connect' -l insecure -d 'No certificate verification'
complete -c ktlsctl -n '__fish_seen_subcommand_from connect' -l sni -x -a '(__fish_print_hostnames)' -d 'Server name to send and verify'
complete -c ktlsctl -n '__fish_seen_subcommand_from connect' -l alpn -x -d 'Offer an ALPN protocol'
complete -c ktlsctl -n '__fish_seen_subcommand_from connect' -l session-in -r -F -d 'Resume the session saved in FILE'
complete -c ktlsctl -n '__fish_seen_subcommand_from connect' -l session-out -r -F -d 'Save the session to FILE for resumption'

# listen only
complete -c ktlsctl -n '__fish_seen_subcommand_from listen' -l echo -d 'Echo every byte back to the peer'
complete -c ktlsctl -n '__fish_seen_subcommand_from listen' -s k -l keep-open -d 'Accept the next connection after one ends'
complete -c ktlsctl -n '__fish_seen_subcommand_from listen' -l verify-client -d 'Require and verify a client certificate'

# selftest
complete -c ktlsctl -n '__fish_seen_subcommand_from selftest' -s v -l verbose -d 'Handshake summary and session events on stderr'
complete -c ktlsctl -n '__fish_seen_subcommand_from selftest' -s q -l quiet -d 'No notices on stderr'
complete -c ktlsctl -n '__fish_seen_subcommand_from selftest' -l json -d 'One JSON document instead of the report'
complete -c ktlsctl -n '__fish_seen_subcommand_from selftest' -l require-kernel -d 'Exit 7 unless the kernel carried every case'

# stats, keyupdate, tickets: a session PID
complete -c ktlsctl -n '__fish_seen_subcommand_from stats keyupdate tickets; and __ktlsctl_needs_pid' -a '(__ktlsctl_pids)' -d 'Session PID'
complete -c ktlsctl -n '__fish_seen_subcommand_from stats' -l json -d 'One JSON document with stable keys'
complete -c ktlsctl -n '__fish_seen_subcommand_from stats' -l watch -x -d 'Repeat every SECS seconds until interrupted'
complete -c ktlsctl -n '__fish_seen_subcommand_from stats' -s q -l quiet -d 'No notices on stderr'
complete -c ktlsctl -n '__fish_seen_subcommand_from stats' -s v -l verbose -d 'Say on stderr where each part comes from'
complete -c ktlsctl -n '__fish_seen_subcommand_from keyupdate' -l request -d 'Ask the peer to update its keys too'
complete -c ktlsctl -n '__fish_seen_subcommand_from keyupdate' -s q -l quiet -d 'No confirmation on stderr'
complete -c ktlsctl -n '__fish_seen_subcommand_from tickets' -l json -d 'JSON output'
