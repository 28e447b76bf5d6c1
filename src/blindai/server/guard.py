"""The last line of defence of every RPC handler.

gRPC answers an unexpected exception with status UNKNOWN and logs the
exception's text, which may quote whatever the failing code was handling. A
guarded handler instead answers INTERNAL with a reference number and logs only
the exception's class, the reference and where it was raised.
"""

from __future__ import annotations

import functools
import logging
import secrets
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

log = logging.getLogger(__name__)

Handler = TypeVar("Handler", bound=Callable[..., Any])


def guarded(method: Handler) -> Handler:
    """Wrap a servicer method ``(self, request, context)``."""

    @functools.wraps(method)
    def handler(self: Any, request: Any, context: Any) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:
            if context.code() is not None:
                raise  # an abort or a cancellation that already set the status
            reference = secrets.token_hex(4)
            log.error(
                "%s failed: %s at %s (reference %s)",
                method.__name__,
                type(exc).__name__,
                _where(exc),
                reference,
            )
            context.abort(
                grpc.StatusCode.INTERNAL,
                f"internal server error (reference {reference}); the request was "
                "not processed and the server keeps serving",
            )
            raise AssertionError("unreachable") from None

    return handler  # type: ignore[return-value]


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
