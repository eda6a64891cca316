"""Who may produce to and consume from which topic, asserted against the real broker and its authorizer.

The expected table below is written out by hand from the access policy (docs/security.md), not
derived from the ACL code: a binding too many or too few in ``cityos.domain.acls`` shows up here as a
cell that differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition

from cityos.domain.kafka_setup import issue_department_credential
from cityos.kernel.kafka import ensure_topics
from cityos.kernel.kafka_access import KafkaAccess, Principal, kafka_access
from tests.support.stack import Stack

DEPARTMENTS = ("digital", "planning", "citizens", "health-welfare")
FAMILIES = ("own dept", "other dept", "validated", "deadletter", "schemas", "own feed", "other feed")
Y, N = True, False
DEPARTMENT_ROW = {
    "own dept": (Y, N),
    "other dept": (N, N),
    "validated": (N, N),
    "deadletter": (N, N),
    "schemas": (N, N),
    "own feed": (N, Y),
    "other feed": (N, N),
}
# (produce, consume) per topic family. For the services, "own"/"other" name two departments' topics.
EXPECTED: dict[str, dict[str, tuple[bool, bool]]] = {
    **{f"dept-{department}": DEPARTMENT_ROW for department in DEPARTMENTS},
    "cityos-ingest": {
        "own dept": (N, Y),
        "other dept": (N, Y),
        "validated": (Y, N),
        "deadletter": (Y, Y),
        "schemas": (N, Y),
        "own feed": (N, N),
        "other feed": (N, N),
    },
    "cityos-catalog": {
        "own dept": (Y, N),  # repaired dead letters go back to their department topic
        "other dept": (Y, N),
        "validated": (N, Y),
        "deadletter": (Y, Y),
        "schemas": (N, N),
        "own feed": (N, N),
        "other feed": (N, N),
    },
    "cityos-feeds": {
        "own dept": (N, N),
        "other dept": (N, N),
        "validated": (N, Y),
        "deadletter": (N, N),
        "schemas": (N, N),
        "own feed": (Y, N),
        "other feed": (Y, N),
    },
    "cityos-registry": {
        "own dept": (N, N),
        "other dept": (N, N),
        "validated": (N, N),
        "deadletter": (N, N),
        "schemas": (Y, N),
        "own feed": (N, N),
        "other feed": (N, N),
    },
    "no credential": {family: (N, N) for family in FAMILIES},
}


@pytest.fixture(scope="module")
def matrix_stack(kafka: KafkaAccess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("matrix")
    yield Stack(kafka=kafka, database_url=f"sqlite:///{folder / 'unused.db'}", log_dir=folder)


def topics_for(stack: Stack, principal: str) -> dict[str, str]:
    settings = stack.settings
    department = principal.removeprefix("dept-") if principal.startswith("dept-") else DEPARTMENTS[0]
    other = DEPARTMENTS[(DEPARTMENTS.index(department) + 1) % len(DEPARTMENTS)]
    return {
        "own dept": settings.department_topic(department),
        "other dept": settings.department_topic(other),
        "validated": settings.validated_topic,
        "deadletter": settings.deadletter_topic,
        "schemas": settings.schemas_topic,
        "own feed": f"{stack.prefix}feed.{department}.matrix",
        "other feed": f"{stack.prefix}feed.{other}.matrix",
    }


def client_config(access: KafkaAccess | None, bootstrap: str) -> dict[str, object]:
    if access is None:
        return {"bootstrap.servers": bootstrap}
    return access.client_config()


def group_for(stack: Stack, principal: str, access: KafkaAccess | None) -> str:
    if principal.startswith("dept-"):
        return f"{stack.prefix}feed.{principal.removeprefix('dept-')}.matrix"
    return access.reader_group("matrix") if access is not None else "anonymous"


def may_produce(config: dict[str, object], topics: dict[str, str]) -> dict[str, bool]:
    producer = Producer({**config, "message.timeout.ms": 8000, "acks": "all"})
    outcome: dict[str, bool] = {}

    def delivered(family: str) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, _message: Message) -> None:
            outcome[family] = error is None

        return report

    for family, topic in topics.items():
        producer.produce(
            topic, key=b"matrix", value=b'{"probe":true}', partition=0, on_delivery=delivered(family)
        )
    producer.flush(20)
    return {family: outcome.get(family, False) for family in topics}


def may_consume(config: dict[str, object], group: str, topics: dict[str, str]) -> dict[str, bool]:
    consumer = Consumer(
        {**config, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )
    by_topic = {topic: family for family, topic in topics.items()}
    seen: dict[str, bool] = {}
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING) for topic in by_topic])
        deadline = time.monotonic() + 12
        while len(seen) < len(by_topic) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=100, timeout=0.5):
                topic = message.topic()
                if topic not in by_topic:
                    continue
                error = message.error()
                if error is None:
                    seen[topic] = True
                elif error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    seen.setdefault(topic, False)
    finally:
        consumer.close()
    return {by_topic[topic]: seen.get(topic, False) for topic in by_topic}


def test_every_principal_reaches_exactly_the_topics_the_policy_allows(matrix_stack: Stack) -> None:
    stack = matrix_stack
    accesses: dict[str, KafkaAccess | None] = {}
    for department in DEPARTMENTS:
        issued = issue_department_credential(stack.service_settings, department, admin=stack.kafka)
        accesses[issued.username] = KafkaAccess(stack.kafka.bootstrap, issued.username, issued.password)
    for service in (Principal.ingest, Principal.catalog, Principal.feeds, Principal.registry):
        accesses[str(service)] = kafka_access(stack.service_settings, service)
    accesses["no credential"] = None

    # Every topic of every row exists and holds one message, so "may consume" means "got it".
    every_topic = {topic for principal in accesses for topic in topics_for(stack, principal).values()}
    ensure_topics(stack.kafka, dict.fromkeys(every_topic, 1))
    seed = Producer(stack.kafka.client_config())
    for topic in every_topic:
        seed.produce(topic, key=b"seed", value=b'{"seed":true}', partition=0)
    assert seed.flush(30) == 0

    actual: dict[str, dict[str, tuple[bool, bool]]] = {}
    for principal, access in accesses.items():
        topics = topics_for(stack, principal)
        config = client_config(access, stack.kafka.bootstrap)
        produced = may_produce(config, topics)
        consumed = may_consume(config, group_for(stack, principal, access), topics)
        actual[principal] = {family: (produced[family], consumed[family]) for family in FAMILIES}

    width = max(len(p) for p in actual)
    print(f"\n{'principal':<{width}}  " + "  ".join(f"{f:>10}" for f in FAMILIES) + "   (produce/consume)")
    cells = 0
    matching = 0
    for principal, row in actual.items():
        shown = []
        for family in FAMILIES:
            got, want = row[family], EXPECTED[principal][family]
            cells += 2
            matching += (got[0] == want[0]) + (got[1] == want[1])
            mark = "" if got == want else "!"
            shown.append(f"{'P' if got[0] else '-'}{'C' if got[1] else '-'}{mark:>1}".rjust(10))
        print(f"{principal:<{width}}  " + "  ".join(shown))
    print(f"{matching}/{cells} cells as expected")
    assert actual == EXPECTED
