"""PostgreSQL restarted twice while events flow into the catalog on it: the catalog rides out each
outage by itself (same process, no restart), loses nothing and applies nothing twice."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import Postgres, start
from tests.chaos.flow import (
    DEPARTMENT,
    Flow,
    assert_dead_letters_exact,
    assert_exactly_once,
    events_per_test,
    metrics,
    total,
    wait_for_catalog,
)
from tests.support.cluster import Cluster
from tests.support.stack import Stack

RESTARTS = 2
FLOW_SECONDS = 120


@pytest.mark.timeout(600)
def test_postgresql_restarted_twice_mid_stream(stack: Stack, cluster: Cluster, postgres: Postgres) -> None:
    stack.create_department_topics(DEPARTMENT)
    start(stack, "catalog")
    start(stack, "ingest")
    catalog = stack.processes["catalog"]
    events = events_per_test()
    flow = Flow(stack, total=events, rate=events / FLOW_SECONDS)
    flow.start()
    flow.wait_started(0.05)
    validated, group = stack.settings.validated_topic, stack.settings.catalog_group
    landed, attempt = 0, 0
    while landed < RESTARTS:
        assert flow.running, f"the flow ended after {landed} of {RESTARTS} restarts landed in flight"
        attempt += 1
        while sum(cluster.lag(group, validated).values()) == 0:
            time.sleep(0.1)
        retries = total(metrics(stack.url("catalog", "/metrics")), "cityos_catalog_db_retries_total")
        behind = sum(cluster.lag(group, validated).values())
        postgres.run("stop")
        time.sleep(3)  # an outage the catalog must notice, not a blink
        postgres.run("start")
        # In flight: the catalog had events it had not committed, and its writes met the outage.
        deadline = time.monotonic() + 60
        now = retries
        while now == retries and time.monotonic() < deadline:
            time.sleep(0.5)
            now = total(metrics(stack.url("catalog", "/metrics")), "cityos_catalog_db_retries_total")
        hit = behind > 0 and now > retries
        landed += hit
        print(
            f"PostgreSQL restart {attempt}: the catalog had {behind} uncommitted events and retried "
            f"{now - retries:.0f} batches" + ("" if hit else " -- not in flight, repeated")
        )
    flow.hurry()
    flow.join()
    wait_for_catalog(flow, stack.database_url)
    assert catalog.poll() is None, "the catalog resumed by itself, without a restart"
    assert stack.processes["catalog"] is catalog
    assert_exactly_once(flow, stack.database_url)
    assert_dead_letters_exact(flow)
    print(f"{flow.total} events acknowledged; the catalog applied each once with its own values")
