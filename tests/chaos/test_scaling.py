"""Ingest, the catalog and the feeds republisher scaled 1 -> 3 -> 1 processes, twice, while events
flow; the extra processes die by kill -9 while they have work in flight. Nothing lost, nothing
applied twice, and the feed still carries every event exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaException

from cityos.kernel.settings import REPO_ROOT
from tests.chaos.conftest import start
from tests.chaos.flow import (
    DATASET,
    DEPARTMENT,
    Flow,
    assert_dead_letters_exact,
    assert_exactly_once,
    events_per_test,
    metrics,
    total,
    validated_ids,
    wait_for_catalog,
)
from tests.support.cluster import Cluster
from tests.support.feeds import bodies, read_settled, subscribe
from tests.support.stack import Stack, free_port

ROUNDS = 2
FLOW_SECONDS = 300
# Per service: the port setting, the metrics path, and the counter that grows with each event it takes.
SERVICES = {
    "ingest": ("CITYOS_INGEST_METRICS_PORT", "/metrics", "cityos_ingest_events_consumed_total"),
    "catalog": ("CITYOS_CATALOG_PORT", "/metrics", "cityos_catalog_events_total"),
    "feeds": ("CITYOS_FEEDS_METRICS_PORT", "/metrics", "cityos_feeds_events_total"),
}


@dataclass
class Extra:
    """One more process of a service, beside the stack's own."""

    service: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SERVICES[self.service][1]}"

    def taken(self) -> float:
        return total(metrics(self.metrics_url), SERVICES[self.service][2])


def start_extra(stack: Stack, service: str, instance: int) -> Extra:
    port = free_port()
    env = {**stack.env, SERVICES[service][0]: str(port), "CITYOS_FEEDS_INSTANCE": str(instance)}
    log = (stack.log_dir / f"{service}-{instance}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "cityos", "serve", service], env=env, cwd=REPO_ROOT, stdout=log, stderr=log
    )
    return Extra(service, port, process)


def wait_working(extra: Extra, timeout_s: float = 90) -> float:
    """Until the process is taking events (its counter grows); the count when it did."""
    deadline = time.monotonic() + timeout_s
    before = extra.taken()
    while time.monotonic() < deadline:
        assert extra.process.poll() is None, f"{extra.service} exited with {extra.process.returncode}"
        time.sleep(0.3)
        now = extra.taken()
        if now > before > 0:
            return now
        before = now
    raise AssertionError(f"the extra {extra.service} process on :{extra.port} never took an event")


def in_flight(
    extra: Extra, group: str, topic: str, cluster: Cluster, timeout_s: float = 60
) -> tuple[float, float, int]:
    """Sampled until the process took events in the last 0.3 s while its group has uncommitted
    ones: (its count 0.3 s ago, its count now, the group's uncommitted events)."""
    deadline = time.monotonic() + timeout_s
    while True:
        before = extra.taken()
        time.sleep(0.3)
        after = extra.taken()
        behind = 0
        # Right after a batch the group may have committed everything: catch the next events written.
        for _ in range(20 if after > before else 0):
            try:
                behind = sum(cluster.lag(group, topic).values())
            except KafkaException:
                # The coordinator holds the offsets of a killed member's open transaction until it
                # is aborted: the committed offsets are not known yet; sample again.
                break
            if behind > 0:
                break
        if (after > before and behind > 0) or time.monotonic() > deadline:
            return before, after, behind


def kill_when_working(extra: Extra, group_topic: tuple[str, str], cluster: Cluster, flow: Flow) -> bool:
    """kill -9 the process once it works (or after 30 s); whether the kill landed in flight: it took
    events in the last 0.3 s while its group had not committed everything written."""
    assert flow.running, "the flow ended before the scaling did"
    flow.stack.assert_running()
    before, after, behind = in_flight(extra, *group_topic, cluster, timeout_s=30)
    extra.process.kill()
    extra.process.wait(10)
    hit = after > before and behind > 0
    print(
        f"  kill -9 {extra.service} on :{extra.port}: it took {after - before:.0f} events in the last 0.3 s; "
        f"its group had {behind} uncommitted" + ("" if hit else " -- not in flight")
    )
    return hit


@pytest.mark.timeout(900)
def test_ingest_catalog_and_feeds_scaled_1_3_1_twice(stack: Stack, cluster: Cluster) -> None:
    stack.create_department_topics(DEPARTMENT)
    start(stack, "catalog")
    start(stack, "ingest", "feeds")
    feed = subscribe(stack, "health-welfare", DATASET, start="now")
    events = events_per_test()
    flow = Flow(stack, total=events, rate=events / FLOW_SECONDS)
    flow.start()
    flow.wait_started()
    groups = {
        "ingest": (stack.settings.ingest_group, stack.settings.department_topic(DEPARTMENT)),
        "catalog": (stack.settings.catalog_group, stack.settings.validated_topic),
        "feeds": (stack.settings.feeds_group, stack.settings.validated_topic),
    }
    kills = 0
    for round_ in range(1, ROUNDS + 1):
        extras = [start_extra(stack, s, instance) for s in SERVICES for instance in (1, 2)]
        try:
            for extra in extras:
                wait_working(extra)
            print(f"round {round_}: 3 processes each of ingest, catalog and feeds")
            for service in SERVICES:
                mine = [e for e in extras if e.service == service]
                landed = sum(kill_when_working(e, groups[service], cluster, flow) for e in mine)
                kills += len(mine)
                # A process idle at its kill (its partitions just moved) proves nothing: one more
                # process of the service joins and is killed, until a kill lands on work in flight.
                spare = 3
                while not landed:
                    assert spare < 6, f"no kill of {service} landed while it had work in flight"
                    extra = start_extra(stack, service, spare)
                    extras.append(extra)
                    wait_working(extra)
                    landed += kill_when_working(extra, groups[service], cluster, flow)
                    kills += 1
                    spare += 1
        finally:
            for extra in extras:
                if extra.process.poll() is None:
                    extra.process.kill()
        print(f"round {round_}: back to 1 process each")
    flow.hurry()
    flow.join()
    wait_for_catalog(flow, stack.database_url)
    assert_exactly_once(flow, stack.database_url)
    assert_dead_letters_exact(flow)

    # Ingest is at least once into the validated topic (a killed ingest's uncommitted events are
    # validated again; the catalog applies each once by its ledger). The feed republishes each
    # validated message exactly once (docs/feeds.md), so it must equal that topic, copy for copy,
    # and hold every good event.
    good = [str(e.event_id) for e in flow.planned if e.event_id is not None]
    copies = validated_ids(stack, len(good))
    assert set(copies) == set(good)
    delivered = Counter(
        b["id"]
        for b in bodies(
            read_settled(stack, feed["topic"], sum(copies.values()), timeout_s=180, watch_services=True)
        )
    )
    assert delivered == copies, (
        f"feed: {sum(delivered.values())} events for {sum(copies.values())} validated messages; "
        f"lost {sum((copies - delivered).values())}, doubled {sum((delivered - copies).values())}"
    )
    redelivered = sum(n - 1 for n in copies.values())
    print(
        f"{kills} kills: catalog exactly once; feed = validated topic message for message; ingest "
        f"validated {redelivered} events a second time after its kills (feed consumers dedupe by id)"
    )
