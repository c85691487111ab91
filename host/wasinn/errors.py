"""What the CLI needs before it knows the command: the usage exit code and HostError.

Kept apart from `wasinn.runner` so that `wasinn build` and `wasinn --help` do not import the
engine, the ABI and the backends (docs/host.md, "Start-up").
"""

EXIT_USAGE = 2


class HostError(Exception):
    """wasinn could not start or run the guest; the message is one line for the user."""
