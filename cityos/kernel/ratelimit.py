"""Request rate limits per caller: token buckets in memory, answered as RFC-style headers. Pure logic.

A bucket holds up to ``limit`` requests and refills at ``limit`` per minute, so a client may burst to
its whole minute and then proceeds at the steady rate. Buckets live in this process: with several
replicas each enforces its own share, which errs on the generous side and needs no shared store on
the hot path. Publish and the catalog each keep their own limiter.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0
# Forget buckets beyond this many identities (oldest-refilled first) so a scan from many addresses
# cannot grow memory without bound; a forgotten bucket starts full, which only ever helps a client.
MAX_BUCKETS = 100_000


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # seconds until one request is allowed; 0 when allowed

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` (IETF httpapi draft), plus ``Retry-After`` on a refusal."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": f"{self.limit};w={int(WINDOW_S)}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiter:
    """Thread-safe token buckets keyed by caller identity (a key id, or an address for anonymous)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, at)

    def check(self, identity: str, limit: int) -> Decision:
        """Take one request from ``identity``'s bucket if it has one."""
        if limit <= 0:
            return Decision(False, 0, 0, int(WINDOW_S), int(WINDOW_S))
        rate = limit / WINDOW_S
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.pop(identity, (float(limit), now))
            tokens = min(float(limit), tokens + (now - at) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            # Re-inserted last: dict order is then least recently used first, for trimming.
            self._buckets[identity] = (tokens, now)
            if len(self._buckets) > MAX_BUCKETS:
                del self._buckets[next(iter(self._buckets))]
        reset = math.ceil((limit - tokens) / rate)
        retry = 0 if allowed else max(1, math.ceil((1.0 - tokens) / rate))
        return Decision(allowed, limit, int(tokens), reset, retry)
