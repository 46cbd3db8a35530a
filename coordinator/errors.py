"""Errors a user can cause: the CLI prints them as one line and exits non-zero."""
from shared.errors import E2EError


class UsageError(E2EError):
    """Bad input: unknown model or engine, unreadable file, invalid option."""
