"""Errors a user can cause: the CLI prints them as one line and exits non-zero."""
import errno

from shared.errors import E2EError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class UsageError(E2EError):
    """Bad input: unknown model or engine, unreadable file, invalid option."""


def disk_full(e: OSError) -> str:
    """The start of the one line a full disk ends in: what could not be written."""
    where = f" writing {e.filename}" if e.filename else ""
    return f"no space left on the device{where}"
