"""How fast the HTTP oracle may start requests: one throttle shared by all of a batch's workers.

Every try of every request waits here first: request starts spaced by ``requests_per_s``, a token bucket for
``tokens_per_min``, and a pause for all workers when a server says Retry-After. Apart from `transport.py` (which sends
a request and reads its answer) because the rate limits are policy that holds across requests, not part of one.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import math
from collections.abc import Callable

from elicit.prompts import estimate_tokens


class Throttle:
    """What every worker waits for before it sends a request (one instance shared by all workers).

    - requests_per_s: request starts spaced by 1/rate seconds.
    - tokens_per_min: a token bucket refilled at tokens_per_min / 60 per second, holding one second's worth
      (or one request, if larger) and starting full; a request takes its estimated tokens and may leave the
      bucket in debt, which later requests wait out, so the long-run rate never exceeds the limit.
    - a server's Retry-After: `hold(s)` pauses every worker's next start until then, not just the one told.
    """

    def __init__(self, requests_per_s: float | None, tokens_per_min: float | None) -> None:
        self.interval = 1.0 / requests_per_s if requests_per_s else 0.0
        self.next = 0.0
        self.token_rate = tokens_per_min / 60.0 if tokens_per_min else 0.0
        self.capacity = self.token_rate  # one second's worth
        self.level = self.capacity
        self.refilled_at: float | None = None
        self.not_before = 0.0
        self.waited_s = 0.0
        self.lock = asyncio.Lock()

    def hold(self, seconds: float) -> None:
        """No worker starts a request for `seconds` from now (a server asked us to wait)."""
        self.not_before = max(self.not_before, asyncio.get_running_loop().time() + seconds)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.waited_s += seconds
            await asyncio.sleep(seconds)

    async def wait(self, tokens: int) -> None:
        if not (self.interval or self.token_rate or self.not_before):
            return
        loop = asyncio.get_running_loop()
        async with self.lock:  # one worker at a time: starts are granted in order
            await self._sleep(self.not_before - loop.time())
            if self.interval:
                now = loop.time()
                await self._sleep(self.next - now)
                self.next = max(now, self.next) + self.interval
            if self.token_rate:
                need = min(float(tokens), max(self.capacity, 1.0))
                while True:
                    now = loop.time()
                    if self.refilled_at is not None:
                        self.level = min(self.capacity, self.level + (now - self.refilled_at) * self.token_rate)
                    self.refilled_at = now
                    if self.level >= need:
                        break
                    await self._sleep((need - self.level) / self.token_rate)
                self.level -= tokens


def request_tokens(payload: str | list[dict[str, str]], count_tokens: Callable[[str], int] | None = None) -> int:
    """Estimated tokens one request costs against tokens_per_min: prompt tokens + max completion tokens (1)."""
    count = count_tokens or estimate_tokens
    if isinstance(payload, str):
        return count(payload) + 1
    return sum(count(str(m.get("content", ""))) + 4 for m in payload) + 3 + 1  # chat framing per message


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds a 429/503 (or any error) response asks us to wait: retry-after-ms, else Retry-After
    (seconds or an HTTP date); None when the response says nothing (then we back off exponentially)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value)
    ra = headers.get("retry-after")
    if ra is None:
        return None
    try:
        value = float(ra)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(ra)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        value = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    return max(0.0, value) if math.isfinite(value) else None
