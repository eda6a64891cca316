"""The open-data API's rate limiter: the kernel's token buckets (``cityos.kernel.ratelimit``), which
the catalog uses too."""

from __future__ import annotations

from cityos.kernel.ratelimit import MAX_BUCKETS, WINDOW_S, Decision, RateLimiter

__all__ = ["MAX_BUCKETS", "WINDOW_S", "Decision", "RateLimiter"]
