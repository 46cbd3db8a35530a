"""One root error type; each subclass maps to a row status in the report."""
from typing import Optional, Union


class E2EError(Exception):
    """Root of every error e2e raises on purpose. `str(e)` is one line a user can act on."""

    status = "failed"


class ProtocolError(E2EError):
    """A spec or result file is missing, unreadable or malformed."""


class EngineUnavailable(E2EError):
    """The engine cannot run here (no GPU, not installed, no image); the row is `skipped`."""

    status = "skipped"


class UnsupportedError(E2EError):
    """The engine cannot handle the model: an operator, a shape, a precision."""

    status = "unsupported"

    def __init__(self, message: str, operator: Optional[str] = None, node: Optional[str] = None):
        super().__init__(message)
        self.operator = operator
        self.node = node


class RunnerTimeout(E2EError):
    """The runner did not finish within its time limit."""

    status = "timeout"


def one_line(error: Union[BaseException, str], limit: int = 300) -> str:
    """An error (or its text) as one line of at most `limit` characters, for a row's reason or a
    log: whitespace runs (newlines included) become one space, a cut is marked with "…", and an
    exception with no message is named by its type."""
    text = " ".join(str(error).split())
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
