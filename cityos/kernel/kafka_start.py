"""Start-up steps of a Kafka-fed service, tried again while a cluster's metadata settles.

On a cluster of several brokers, ACLs written by `cityos kafka setup` reach each broker through
the cluster's metadata log a moment after the set-up returns, and a transaction or group
coordinator is elected (and loads its state) after brokers restart. A service starting in that
moment is told it is not authorized, or that there is no coordinator yet: answers that pass within
seconds. Exiting on them would only hand the wait to a supervisor (and, for the feeds republisher,
show as a crash), so each start-up step is tried again with back-off, every retry logged, for a
bounded time; past it the service stops with the last error and what usually causes it to last.

Only these start-up answers are tried again: anything else (a wrong password, an unreachable
cluster, a refused configuration) fails at once as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException

from cityos.kernel.errors import KafkaUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# A broker not yet holding the newest ACLs refuses as if the ACL were missing.
AUTHORIZATION_ERRORS: frozenset[int] = frozenset(
    {
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)
# No coordinator yet, or one still loading its log, or a predecessor's transaction still ending.
COORDINATOR_ERRORS: frozenset[int] = frozenset(
    {
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.CONCURRENT_TRANSACTIONS,
    }
)
RETRIED_AT_START: frozenset[int] = AUTHORIZATION_ERRORS | COORDINATOR_ERRORS


@dataclass(frozen=True)
class Backoff:
    """Waits between tries: ``first_s``, doubling, at most ``max_s``; no try starts after ``budget_s``."""

    first_s: float = 0.5
    max_s: float = 5.0
    budget_s: float = 60.0


def retry_delay(code: int | None, attempt: int, elapsed_s: float, backoff: Backoff) -> float | None:
    """Seconds to wait before trying a start-up step again after its ``attempt``-th failure
    (1-based) with Kafka error ``code``, ``elapsed_s`` after its first try; None: give up now
    (not an answer that passes by itself, or the next try would start past the budget)."""
    if code not in RETRIED_AT_START or attempt < 1:
        return None
    delay = min(backoff.first_s * 2.0 ** (attempt - 1), backoff.max_s)
    if elapsed_s + delay > backoff.budget_s:
        return None
    return delay


def kafka_error_code(exc: BaseException) -> int | None:
    """The Kafka error code an exception carries, itself or through the exceptions it was raised
    from (``KafkaUnavailable`` wraps the client's ``KafkaException``)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KafkaException) and seen.args and isinstance(seen.args[0], KafkaError):
            return int(seen.args[0].code())
        seen = seen.__cause__
    return None


def _why_it_lasts(code: int | None) -> str:
    if code in AUTHORIZATION_ERRORS:
        return (
            "the brokers still refuse this principal: has `cityos kafka setup` run for this topic prefix "
            "(and for this principal's transactional ids)?"
        )
    return "no coordinator answered: are enough brokers up for the internal topics' min.insync.replicas?"


def retry_at_start(
    step: str,
    action: Callable[[], T],
    *,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``action()``, tried again while it fails with an answer that passes by itself (see the
    module), within ``backoff``'s budget. ``action`` must be safe to repeat: a client whose failure
    is fatal to it (a transactional producer) is created inside it, so every try has a fresh one.
    Raises the action's own error when it is not one of those answers, KafkaUnavailable naming the
    step and the likely cause when the budget is spent."""
    policy = backoff or Backoff()
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return action()
        except (KafkaException, KafkaUnavailable) as exc:
            code = kafka_error_code(exc)
            elapsed = clock() - started
            delay = retry_delay(code, attempt, elapsed, policy)
            if delay is None:
                if code in RETRIED_AT_START:
                    raise KafkaUnavailable(
                        f"{step}: still failing after {attempt} tries in {elapsed:.1f} s, the next would "
                        f"start past the {policy.budget_s:.0f} s allowed ({exc}); " + _why_it_lasts(code)
                    ) from exc
                raise
            log.warning(
                "%s: %s; the cluster may still be settling (ACLs reaching every broker, a coordinator "
                "being elected): try %d in %.1f s, giving up %.0f s after the first",
                step,
                exc,
                attempt + 1,
                delay,
                policy.budget_s,
            )
        sleep(delay)
