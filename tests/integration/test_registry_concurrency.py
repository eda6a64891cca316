"""Two registrations racing for the same dataset, on SQLite and PostgreSQL with the real broker:
one becomes v2, the other is evaluated again against it (here: refused, since each drops the other's
new field from a closed schema); the version numbers stay gapless and the schema topic has v2 only."""

from __future__ import annotations

import copy
import threading
import uuid
from typing import Any

from confluent_kafka import Producer

from cityos.domain.registry.service import register
from cityos.domain.registry.store import Evaluation, versions_of
from cityos.domain.registry.topic import SchemaFollower, ensure_schema_topic
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.kafka import producer_config
from cityos.kernel.kafka_access import KafkaAccess
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT
from services.catalog.store import sync_schema_set


def test_concurrent_registrations(database_url: str, kafka: KafkaAccess) -> None:
    schema_set = load_schema_dir(REPO_ROOT / "schemas")
    migrate(database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine, sqlite_begin="IMMEDIATE")
    with sessions.begin() as session:
        sync_schema_set(session, schema_set=schema_set)
    topic = f"t{uuid.uuid4().hex[:10]}.cityos.schemas"
    ensure_schema_topic(kafka, topic)

    def candidate(field: str) -> dict[str, Any]:
        document = copy.deepcopy(schema_set.latest("aed").document)
        del document["$id"]
        document["properties"][field] = {"type": "string", "maxLength": 20}
        return document

    results: dict[str, Evaluation] = {}
    start = threading.Barrier(2)

    def run(field: str) -> None:
        producer = Producer(producer_config(kafka))
        start.wait()
        results[field] = register(
            sessions,
            producer=producer,
            schemas_topic=topic,
            dataset_id="aed",
            document=candidate(field),
            actor="t",
        )

    threads = [threading.Thread(target=run, args=(field,)) for field in ("甲", "乙")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        registered = [field for field, e in results.items() if e.acceptable and not e.existing]
        refused = [e for e in results.values() if not e.acceptable]
        assert len(registered) == 1 and len(refused) == 1, results
        assert results[registered[0]].version == 2
        [reason] = refused[0].incompatibilities
        assert (reason.rule, reason.version, reason.pointer) == (
            "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
            2,
            f"/properties/{registered[0]}",
        )
        with sessions() as session:
            assert [row.version for row in versions_of(session, "aed")] == [1, 2]
        follower = SchemaFollower(kafka, topic)
        seen = [change.uri for change in follower.poll(timeout_s=5)]
        follower.close()
        assert seen == [schema_uri("aed", 2)]
    finally:
        engine.dispose()
