"""What went wrong with a request to an HTTP oracle, in a few words.

Whether a failure is worth another try (transient), whether the server was reached at all, the cause's first line
and the server's own message, each scrubbed of the API key before it is cut. `transport.py` decides what to do about a
failure (retry, give up, which fix to name); these helpers only classify and describe it, and never see the oracle's
settings.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Mapping
from typing import Any

import openai

from elicit.oracle.base import OracleError


def _same(text: str) -> str:
    return text


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def never_connected(exc: BaseException) -> bool:
    """Whether a connection failure happened before the server was reached (refused, DNS, connect)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError) or getattr(cur, "errno", None) == errno.ECONNREFUSED:
            return True
        if type(cur).__name__ in ("ConnectError", "ConnectTimeout", "gaierror"):
            return True
        cur = cur.__cause__ or cur.__context__
    return "refused" in root_cause(exc)


def root_cause(exc: BaseException, scrub: Callable[[str], str] = _same) -> str:
    """A short cause of a connection failure, e.g. 'connection refused' (scrubbed before it is cut)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    last = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError) or getattr(cur, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        last = cur
        cur = cur.__cause__ or cur.__context__
    msg = scrub(str(last) or type(last).__name__)
    if "refused" in msg.lower() or "connect call failed" in msg.lower():
        return "connection refused"
    return (msg.splitlines() or [""])[0][:200]


def status_message(exc: openai.APIStatusError, scrub: Callable[[str], str] = _same) -> str:
    """The server's error message: its first line, scrubbed (of the API key) BEFORE it is cut to 300 characters,
    so a key echoed across the cut cannot leave a prefix behind."""

    def first_line(text: str) -> str:
        return (scrub(text).splitlines() or [""])[0][:300]

    body = exc.body
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping) and err.get("message"):
            return first_line(str(err["message"]))
        if isinstance(err, str):
            return first_line(err)
    return first_line(str(exc.message) or exc.response.reason_phrase)


def first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first non-cancellation exception of a TaskGroup failure (OracleError preferred)."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            leaves.append(e)

    walk(group)
    for e in leaves:
        if isinstance(e, OracleError):
            return e
    for e in leaves:
        if not isinstance(e, asyncio.CancelledError):
            return e
    return leaves[0]
