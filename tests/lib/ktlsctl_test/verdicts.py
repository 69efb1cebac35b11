"""What a case raises to end with a verdict other than PASS."""


class Skip(Exception):
    """The case cannot run here; the message is the reason."""


class Fail(AssertionError):
    """ktlsctl (or a peer) misbehaved."""


class Hang(Fail):
    """A process did not finish within its timeout (it has been killed)."""
