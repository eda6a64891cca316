"""Brokers die while events flow: kill -9 of the leader of the busiest partition, and a rolling
restart of all three. Every event the cluster acknowledged reaches the catalog exactly once with
its own values; the dead letters are exactly the bad events sent."""

from __future__ import annotations

import os
import time

import pytest

from tests.chaos.conftest import start
from tests.chaos.flow import (
    DEPARTMENT,
    Flow,
    assert_dead_letters_exact,
    assert_exactly_once,
    events_per_test,
    wait_for_catalog,
)
from tests.support.cluster import NODES, Cluster
from tests.support.stack import Stack

KILLS = 5
# The paced flow would last this long (whatever its size): long enough for every kill and restart
# even on a busy machine; once they are done the rest is sent at full speed.
FLOW_SECONDS = float(os.environ.get("CITYOS_CHAOS_FLOW_SECONDS", "400"))


def start_pipeline(stack: Stack) -> tuple[list[str], dict[str, str]]:
    """Ingest and the catalog on the cluster; (topics to watch, topic -> the group consuming it)."""
    stack.create_department_topics(DEPARTMENT)
    start(stack, "catalog")
    start(stack, "ingest")
    department = stack.settings.department_topic(DEPARTMENT)
    validated = stack.settings.validated_topic
    groups = {department: stack.settings.ingest_group, validated: stack.settings.catalog_group}
    return [department, validated, "__consumer_offsets"], groups


def busiest_with_work(cluster: Cluster, groups: dict[str, str], tries: int = 20) -> tuple[str, int, int, int]:
    """(topic, partition, events appended in 0.5 s, events not yet committed by its consumers) of the
    busiest partition, sampled until one has work in flight (or ``tries`` samples)."""
    for _ in range(tries):
        topic, partition, appended = cluster.busiest(groups)
        behind = cluster.lag(groups[topic], topic)[partition]
        if appended > 0 and behind > 0:
            break
    return topic, partition, appended, behind


def uncommitted_on(cluster: Cluster, groups: dict[str, str], node: int) -> tuple[int, int]:
    """(partitions ``node`` leads, events on them its consumers have not committed)."""
    led = [(t, p) for t in groups for p, leader in cluster.leaders(t).items() if leader == node]
    return len(led), sum(cluster.lag(groups[t], t)[p] for t, p in led)


def check(flow: Flow, stack: Stack) -> None:
    flow.join()
    wait_for_catalog(flow, stack.database_url)
    assert_exactly_once(flow, stack.database_url)
    assert_dead_letters_exact(flow)
    print(f"{flow.total} events acknowledged; the catalog applied each once with its own values")


@pytest.mark.timeout(600)
def test_kill_9_of_the_busiest_partitions_leader_five_times(stack: Stack, cluster: Cluster) -> None:
    watched, groups = start_pipeline(stack)
    total = events_per_test()
    flow = Flow(stack, total=total, rate=total / FLOW_SECONDS)
    flow.start()
    flow.wait_started()
    landed, attempt = 0, 0
    while landed < KILLS:
        assert flow.running, f"the flow ended after {landed} of {KILLS} kills landed in flight"
        attempt += 1
        topic, partition, appended, behind = busiest_with_work(cluster, groups)
        node = cluster.leaders(topic)[partition]
        cluster.kill(node)
        # In flight: events were being appended to the partition the killed broker led, and its
        # consumers had not yet committed some of them, so they must be read again from a new leader.
        hit = appended > 0 and behind > 0
        landed += hit
        print(
            f"kill {attempt}: node {node}, leader of {topic}[{partition}]: {appended} events appended in "
            f"the last 0.5 s, {behind} not yet committed by {groups[topic]}"
            + ("" if hit else " -- not in flight, repeated")
        )
        cluster.start_node(node)
        cluster.wait_in_sync(watched)
    flow.hurry()
    check(flow, stack)


@pytest.mark.timeout(600)
def test_rolling_restart_of_all_three_brokers(stack: Stack, cluster: Cluster) -> None:
    watched, groups = start_pipeline(stack)
    total = events_per_test()
    flow = Flow(stack, total=total, rate=total / FLOW_SECONDS)
    flow.start()
    flow.wait_started()
    for node in NODES:
        assert flow.running, "the flow ended before the restart did"
        led, behind = uncommitted_on(cluster, groups, node)
        deadline = time.monotonic() + 30
        while behind == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
            led, behind = uncommitted_on(cluster, groups, node)
        cluster.stop_node(node)
        print(
            f"rolling restart: node {node} stopped while leading {led} partitions with {behind} uncommitted events"
        )
        assert behind > 0, "each restart must land while the pipeline has work in flight on the node"
        cluster.start_node(node)
        cluster.wait_in_sync(watched)
    flow.hurry()
    check(flow, stack)
