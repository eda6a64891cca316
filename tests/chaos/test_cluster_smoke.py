"""The platform unchanged on three brokers: topics replicated three times with two in sync
required, and events through ingest, the catalog, the open-data API and a feed."""

from __future__ import annotations

import random
import time
from collections import Counter

import httpx

from tests.chaos.conftest import start
from tests.chaos.flow import DATASET, Flow, assert_dead_letters_exact, assert_exactly_once, wait_for_catalog
from tests.support.cluster import Cluster
from tests.support.feeds import bodies, read_settled, subscribe
from tests.support.stack import Stack

EVENTS = 2_000


def test_services_and_cli_work_on_the_cluster_with_replicated_topics(stack: Stack, cluster: Cluster) -> None:
    # The operator's set-up through the CLI, as on a single broker: only the bootstrap list differs.
    setup = stack.cli("kafka", "setup")
    assert setup.returncode == 0, setup.stderr.decode()
    assert "," in stack.kafka_bootstrap
    start(stack, "catalog")
    start(stack, "ingest", "publish", "feeds")
    feed = subscribe(stack, "health-welfare", DATASET, start="now")

    settings = stack.settings
    topics = [
        settings.validated_topic,
        settings.deadletter_topic,
        settings.department_topic("fire"),
        settings.schemas_topic,
        settings.feeds_state_topic,
    ]
    flow = Flow(stack, total=EVENTS, rate=2_000)
    flow.start()
    flow.join()
    wait_for_catalog(flow, stack.database_url, timeout_s=120)
    assert_exactly_once(flow, stack.database_url)
    assert_dead_letters_exact(flow)

    # The feed topic was created by the republisher, not by the operator: replicated all the same.
    topics.append(feed["topic"])
    for topic in topics:
        assert cluster.topic_replication(topic) == (3, 2), topic

    good = [e for e in flow.planned if e.event_id is not None]
    delivered = bodies(read_settled(stack, feed["topic"], len(good), timeout_s=120))
    assert Counter(b["id"] for b in delivered) == Counter(str(e.event_id) for e in good)

    # The open-data API answers every sampled record with the values of its last event.
    latest = {str(e.data["NO"]): e.data for e in good if e.data is not None}
    deadline = time.monotonic() + 10
    for key in random.sample(sorted(latest), 50):
        response = httpx.get(stack.url("publish", f"/api/v1/datasets/{DATASET}/records/{key}"), timeout=10)
        while response.status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.5)
            response = httpx.get(
                stack.url("publish", f"/api/v1/datasets/{DATASET}/records/{key}"), timeout=10
            )
        assert response.status_code == 200, response.text
        assert response.json() == latest[key]
