"""The one exception type users see: a problem with their input, said in one line."""


class SessrecError(Exception):
    """Bad input or configuration. The CLI prints the message on one line and exits with code 2."""


class EveryProcessError(SessrecError):
    """A refusal of the command or its options that every process of a launched (torchrun) run meets alike: only
    rank 0 prints it, once for the run."""
