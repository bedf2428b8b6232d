"""The one exception type a user is meant to read.

Anything raised as a :class:`CriticError` is a mistake in what the user gave us (a missing
file, a corrupt bundle, an unknown model name, an empty review): the CLI prints its message as
one line and exits non-zero, and the server answers it with a 4xx. Anything else is a bug.
"""


class CriticError(Exception):
    """A problem with the user's input, explained in the message."""


class BundleError(CriticError):
    """A model bundle is missing, incomplete or corrupt."""


class DataError(CriticError):
    """A data source cannot be read or has the wrong shape."""
