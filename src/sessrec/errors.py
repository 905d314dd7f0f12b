"""The one exception type users see: a problem with their input, said in one line."""


class SessrecError(Exception):
    """Bad input or configuration. The CLI prints the message on one line and exits with code 2."""
