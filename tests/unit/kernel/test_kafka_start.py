"""When a service tries a Kafka start-up step again: only for answers that pass by themselves
(not yet authorized, no coordinator yet), with doubling waits, and never past the budget."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from cityos.kernel.errors import KafkaUnavailable
from cityos.kernel.kafka_start import (
    AUTHORIZATION_ERRORS,
    COORDINATOR_ERRORS,
    Backoff,
    kafka_error_code,
    retry_at_start,
    retry_delay,
)

POLICY = Backoff(first_s=0.5, max_s=5.0, budget_s=60.0)


@pytest.mark.parametrize("code", sorted(AUTHORIZATION_ERRORS | COORDINATOR_ERRORS))
def test_answers_that_pass_by_themselves_are_tried_again(code: int) -> None:
    assert retry_delay(code, 1, 0.0, POLICY) == 0.5


@pytest.mark.parametrize(
    "code",
    [
        None,  # not a Kafka error at all
        KafkaError.SASL_AUTHENTICATION_FAILED,  # a wrong password does not heal
        KafkaError._TRANSPORT,  # nobody there: the client's own timeouts already waited
        KafkaError.TOPIC_ALREADY_EXISTS,
        KafkaError.INVALID_CONFIG,
    ],
)
def test_other_failures_are_not(code: int | None) -> None:
    assert retry_delay(code, 1, 0.0, POLICY) is None


def test_waits_double_up_to_the_longest() -> None:
    code = KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    delays = [retry_delay(code, attempt, 0.0, POLICY) for attempt in range(1, 8)]
    expected = [min(POLICY.first_s * 2**n, POLICY.max_s) for n in range(7)]
    assert delays == expected
    assert delays[-1] == POLICY.max_s


def test_no_try_starts_past_the_budget() -> None:
    code = KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert retry_delay(code, 10, POLICY.budget_s - POLICY.max_s, POLICY) == POLICY.max_s
    assert retry_delay(code, 10, POLICY.budget_s - POLICY.max_s + 0.01, POLICY) is None
    assert retry_delay(code, 1, POLICY.budget_s, POLICY) is None


def test_the_code_is_found_through_the_wrapping_error() -> None:
    inner = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    try:
        try:
            raise inner
        except KafkaException as exc:
            raise KafkaUnavailable("cannot create topic") from exc
    except KafkaUnavailable as wrapped:
        assert kafka_error_code(wrapped) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert kafka_error_code(KafkaUnavailable("no cause")) is None
    assert kafka_error_code(ValueError("x")) is None


class Clock:
    """Time that moves only when the retry sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def refusing(times: int, code: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise KafkaException(KafkaError(code))
        return "started"

    return calls, action


def test_a_step_refused_a_few_times_then_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    calls, action = refusing(3, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    result = retry_at_start("feeds: transactions", action, backoff=POLICY, sleep=clock.sleep, clock=clock)
    assert result == "started"
    assert len(calls) == 4
    assert clock.slept == [0.5, 1.0, 2.0]
    tries = [r.getMessage() for r in caplog.records if "feeds: transactions" in r.getMessage()]
    assert len(tries) == 3
    assert all("TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in line for line in tries)
    assert "try 2 in 0.5 s" in tries[0]


def test_a_step_refused_past_the_budget_stops_with_the_cause() -> None:
    clock = Clock()
    budget = Backoff(first_s=1.0, max_s=4.0, budget_s=20.0)
    calls, action = refusing(1000, KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaUnavailable) as raised:
        retry_at_start("catalog: pipeline topics", action, backoff=budget, sleep=clock.sleep, clock=clock)
    assert sum(clock.slept) <= budget.budget_s
    assert len(calls) == len(clock.slept) + 1
    message = str(raised.value)
    assert message.startswith("catalog: pipeline topics: still failing after")
    assert "cityos kafka setup" in message


def test_any_other_failure_is_raised_at_once_unchanged() -> None:
    clock = Clock()
    calls, action = refusing(1, KafkaError.SASL_AUTHENTICATION_FAILED)
    with pytest.raises(KafkaException) as raised:
        retry_at_start("ingest: topics", action, backoff=POLICY, sleep=clock.sleep, clock=clock)
    assert kafka_error_code(raised.value) == KafkaError.SASL_AUTHENTICATION_FAILED
    assert len(calls) == 1
    assert clock.slept == []
