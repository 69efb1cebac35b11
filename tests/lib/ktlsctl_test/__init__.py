"""ktlsctl's test library, shared by the integration suites
(tests/integration), the benchmark (tests/bench) and the VM tier
(tests/vm), Python 3 standard library only.  One module per job:

  settings   where things are; environment settings (timeouts, data sizes,
             valgrind)
  channel    the record channel under test (KTLSCTL_TEST_CHANNEL) and the
             kernel's kTLS facts; where a case applies
  runner     Suite: cases, verdicts, the command line of every test file
  verdicts   Skip, Fail, Hang
  procs      child processes, waiting for events, running ktlsctl
  data       test data and the check that it arrived whole
  certs      the test PKI (certtool)
  peers      the real TLS peers: gnutls-serv, gnutls-cli, s_server, s_client
  pytls      a scriptable TLS peer in Python
  starttls_peers  servers with a STARTTLS preamble: exim4, dovecot and
             PostgreSQL on their own ports, and a scripted one
  relays     TCP relays that read or alter the TLS records on the wire

A test file puts tests/lib on sys.path and imports what it uses from the
modules (from ktlsctl_test.procs import Proc, ...).
"""
