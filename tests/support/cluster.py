"""The local three-node Kafka cluster (deploy/local/cluster.sh) seen from a test: who leads what,
which partition is busiest, how far a consumer group is behind, and the nodes' kill switches.

Its nodes are separate JVMs on this machine; a kill here is a real ``kill -9`` of one of them.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from cityos.kernel.kafka import reader_config
from cityos.kernel.kafka_access import KafkaAccess, Principal, password_secret_name
from cityos.kernel.secret_store import read_secret
from cityos.kernel.settings import REPO_ROOT, Settings

# What a partition answers while its leadership moves after a broker died.
_LEADER_CHANGING = frozenset(
    {KafkaError.OFFSET_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}
)

CLUSTER_SCRIPT = REPO_ROOT / "deploy" / "local" / "cluster.sh"
NODES = (1, 2, 3)
# librdkafka log level of these clients: a killed node is expected, its refused connections are not news.
QUIET = 2


def script(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=REPO_ROOT,
    )


def running() -> bool:
    return script("status").returncode == 0


def bootstrap() -> str:
    return script("url").stdout.strip()


@dataclass
class Cluster:
    """The cluster's administrator plus the node switches."""

    kafka: KafkaAccess

    @classmethod
    def local(cls) -> Cluster:
        password = read_secret(Settings().secrets_dir, password_secret_name(Principal.admin)) or ""
        return cls(KafkaAccess(bootstrap(), Principal.admin, password))

    _admin: AdminClient | None = None

    def admin(self) -> AdminClient:
        # One client, kept: futures of a client that was garbage-collected never complete.
        if self._admin is None:
            self._admin = AdminClient({**self.kafka.client_config(), "log_level": QUIET})
        return self._admin

    # --- nodes -------------------------------------------------------------------------------
    def kill(self, node: int) -> None:
        """kill -9 one broker (and controller): no controlled shutdown, no leadership hand-over."""
        result = script("kill", str(node))
        assert result.returncode == 0, result.stderr

    def stop_node(self, node: int) -> None:
        result = script("stop-node", str(node))
        assert result.returncode == 0, result.stderr

    def start_node(self, node: int) -> None:
        result = script("start-node", str(node))
        assert result.returncode == 0, result.stdout + result.stderr

    def heal(self) -> None:
        """Every node running (the script starts the missing ones)."""
        result = script("start")
        assert result.returncode == 0, result.stdout + result.stderr

    def alive(self, node: int) -> bool:
        return script("pid", str(node)).returncode == 0

    def delete_topics(self, prefix: str) -> None:
        """Delete every topic whose name starts with ``prefix`` (one test's topics)."""
        admin = self.admin()
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        for future in admin.delete_topics(names, operation_timeout=30).values() if names else []:
            future.result()

    # --- metadata -----------------------------------------------------------------------------
    def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> leading node of ``topic`` (-1 while leaderless)."""
        metadata = self.admin().list_topics(topic, timeout=10).topics[topic]
        return {p: info.leader for p, info in metadata.partitions.items()}

    def under_replicated(self, topics: Iterable[str]) -> list[str]:
        """``topic/partition`` of every partition without all three replicas in sync."""
        admin = self.admin()
        short = []
        for topic in topics:
            metadata = admin.list_topics(topic, timeout=10).topics[topic]
            for p, info in metadata.partitions.items():
                if len(info.isrs) < len(NODES) or info.leader < 0:
                    short.append(f"{topic}/{p}")
        return short

    def wait_in_sync(self, topics: Iterable[str], timeout_s: float = 90) -> None:
        """Until every partition of ``topics`` has all three replicas in sync again."""
        names = list(topics)
        deadline = time.monotonic() + timeout_s
        while short := self.under_replicated(names):
            assert time.monotonic() < deadline, f"not back in sync within {timeout_s} s: {short}"
            time.sleep(0.5)

    def topic_replication(self, topic: str) -> tuple[int, int]:
        """(replicas per partition, effective min.insync.replicas) of ``topic``."""
        admin = self.admin()
        metadata = admin.list_topics(topic, timeout=10).topics[topic]
        replicas = min(len(info.replicas) for info in metadata.partitions.values())
        resource = ConfigResource("topic", topic)  # type: ignore[arg-type]  # the stub names the wrong type
        configs = admin.describe_configs([resource])[resource].result(timeout=10)
        return replicas, int(configs["min.insync.replicas"].value)

    _reader: Consumer | None = None
    _groups: dict[str, Consumer] = field(default_factory=dict)

    def end_offsets(self, topic: str) -> dict[int, int]:
        if self._reader is None:
            self._reader = Consumer(
                reader_config(self.kafka, self.kafka.reader_group("chaos-watermarks"), log_level=QUIET)
            )
        partitions = self._reader.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: self._high_watermark(TopicPartition(topic, p)) for p in partitions}

    def _high_watermark(self, partition: TopicPartition, timeout_s: float = 20) -> int:
        """The partition's end offset. Right after its leader was killed, the new leader answers
        "high watermark not caught up" (or "not leader") for a moment: asked again until it knows."""
        assert self._reader is not None
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return int(self._reader.get_watermark_offsets(partition, timeout=10)[1])
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                transient = isinstance(error, KafkaError) and (
                    error.retriable() or error.code() in _LEADER_CHANGING
                )
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offsets on ``topic`` (0 where it has committed nothing), read as the
        group without joining it. (Not the admin client's ListConsumerGroupOffsets: librdkafka
        2.13 crashes when that request meets a coordinator that just moved.)"""
        if group not in self._groups:
            self._groups[group] = Consumer(
                {
                    **self.kafka.client_config(),
                    "group.id": group,
                    "enable.auto.commit": False,
                    "log_level": QUIET,
                }
            )
        partitions = [TopicPartition(topic, p) for p in self.end_offsets(topic)]
        answer = self._groups[group].committed(partitions, timeout=10)
        return {tp.partition: max(tp.offset, 0) for tp in answer}

    def lag(self, group: str, topic: str) -> dict[int, int]:
        """Partition -> messages the group has not committed yet (written but not done with)."""
        ends = self.end_offsets(topic)
        done = self.committed(group, topic)
        return {p: ends[p] - done.get(p, 0) for p in ends}

    def busiest(self, topics: Iterable[str], window_s: float = 0.5) -> tuple[str, int, int]:
        """(topic, partition, messages appended in the window) of the partition growing fastest now."""
        names = list(topics)
        before = {t: self.end_offsets(t) for t in names}
        time.sleep(window_s)
        after = {t: self.end_offsets(t) for t in names}
        growth = [(after[t][p] - before[t][p], t, p) for t in names for p in after[t]]
        appended, topic, partition = max(growth)
        return topic, partition, appended
