"""bench/schemas: ingest's routing decision with 1,000 registered datasets × 3 versions against the same
with a single schema, in one run; prints the ratio (target ≥ 0.9) and the registry's memory.

Both sides route the same kind of event (a ~1 KB structured AED-shaped upsert) through
``services.ingest.routing.route``: parse, one compiled validation, department check, output. The
"single" registry knows one dataset and one version; the "registry" side knows 1,000 datasets with
three versions each (v2 and v3 add optional fields) and the events are spread over all 3,000 versions,
so look-ups and validator caches see the full registry: once in batches of ``--burst`` events per
version (departments send their changes in batches), once interleaved event by event (worst case:
every event hits a validator whose regex programs are cold in the CPU caches). Rounds alternate;
medians are reported.
Memory is the process's resident set growth while building the big registry (jsonschema-rs
validators live outside the Python heap, so tracemalloc would not see them).

    .venv/bin/python -m bench.schemas [--events 30000] [--rounds 5] [--datasets 1000]
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cityos.department.outbox import record_event
from cityos.kernel.events import STRUCTURED_CONTENT_TYPE
from cityos.kernel.schemas import DatasetMeta, SchemaSet, SchemaVersion, load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT
from cityos.kernel.validation import ValidatorRegistry
from services.ingest.routing import InboundMessage, Topics, route

STRUCTURED_HEADER = "content-type"
TOPICS = Topics(validated="cityos.validated", deadletter="cityos.deadletter")
NOW = datetime.now(UTC)
MAX_FUTURE = timedelta(minutes=5)


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def synthetic_set(count: int, versions: int) -> SchemaSet:
    """``count`` datasets shaped like aed, each with ``versions`` versions (each adds a field)."""
    real = load_schema_dir(REPO_ROOT / "schemas")
    base_meta, base_doc = real.datasets["aed"], real.latest("aed").document
    datasets: dict[str, DatasetMeta] = {}
    found: dict[str, SchemaVersion] = {}
    for index in range(count):
        dataset_id = f"bench-{index:04d}"
        datasets[dataset_id] = base_meta.model_copy(update={"id": dataset_id})
        for number in range(1, versions + 1):
            document = copy.deepcopy(base_doc)
            document["$id"] = schema_uri(dataset_id, number)
            for extra in range(2, number + 1):
                document["properties"][f"追加{extra}"] = {"type": "string", "maxLength": 100}
            found[document["$id"]] = SchemaVersion(
                dataset_id=dataset_id, version=number, uri=document["$id"], document=document
            )
    return SchemaSet(datasets=datasets, departments=real.departments, versions=found)


def messages(count: int, targets: list[tuple[str, int]], burst: int = 1) -> list[InboundMessage]:
    """``count`` events over ``targets``, ``burst`` consecutive events per target in turn."""
    record: dict[str, Any] = {
        "NO": "0000000001",
        "名称": "北九州市立ベンチマーク会館",
        "名称_カナ": "キタキュウシュウシリツベンチマークカイカン",
        "住所": "福岡県北九州市小倉北区城内1番1号",
        "方書": "本館",
        "設置位置": "1階正面玄関を入って右側、受付カウンター横の壁面",
        "緯度": 33.8834,
        "経度": 130.8752,
        "利用可能曜日": "月火水木金土日",
        "開始時間": "08:30",
        "終了時間": "17:15",
        "利用可能日時特記事項": "年末年始（12月29日〜1月3日）を除く。夜間は警備室にお声がけください。",
        "電話番号": "093-582-0000",
        "URL": "https://www.city.kitakyushu.lg.jp/",
    }
    out = []
    for index in range(count):
        dataset_id, version = targets[(index // burst) % len(targets)]
        value = record_event(
            record={**record, "NO": f"{index:010d}"},
            dataschema=schema_uri(dataset_id, version),
            source="/departments/fire/bench",
            event_id=f"b{index}",
            time=NOW,
        )
        headers: list[tuple[str, bytes | None]] = [(STRUCTURED_HEADER, STRUCTURED_CONTENT_TYPE.encode())]
        out.append(InboundMessage("dept.fire.events", 0, index, None, value, headers, None))
    return out


def rate(registry: ValidatorRegistry, batch: list[InboundMessage]) -> float:
    started = time.perf_counter()
    valid = 0
    for message in batch:
        valid += (
            route(message, registry=registry, topics=TOPICS, now=NOW, max_future=MAX_FUTURE).reason is None
        )
    elapsed = time.perf_counter() - started
    if valid != len(batch):
        raise SystemExit(f"only {valid} of {len(batch)} events were valid: the benchmark input is wrong")
    return len(batch) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=100, help="consecutive events per version")
    args = parser.parse_args()

    single = ValidatorRegistry(synthetic_set(1, 1))
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    big_set = synthetic_set(args.datasets, 3)
    big = ValidatorRegistry(big_set)
    build_s = time.perf_counter() - started
    gc.collect()
    memory = rss_bytes() - before
    versions = sorted((v.dataset_id, v.version) for v in big_set.versions.values())

    single_input = messages(args.events, [("bench-0000", 1)])
    bursts_input = messages(args.events, versions, burst=args.burst)
    spread_input = messages(args.events, versions)
    print(f"event size {len(spread_input[0].value or b'')} bytes; {len(versions)} versions registered")
    singles, bursts, spreads = [], [], []
    for _ in range(args.rounds):
        singles.append(rate(single, single_input))
        bursts.append(rate(big, bursts_input))
        spreads.append(rate(big, spread_input))
    single_rate = statistics.median(singles)
    burst_rate, spread_rate = statistics.median(bursts), statistics.median(spreads)
    print(
        f"single schema:                             {single_rate:10,.0f} events/s (median of {args.rounds})"
    )
    print(f"all versions, {args.burst} events per version in turn: {burst_rate:10,.0f} events/s")
    print(f"all versions, each event another version:  {spread_rate:10,.0f} events/s")
    print(f"ratio {burst_rate / single_rate:.2f} with batches per dataset (target ≥ 0.9)")
    print(f"ratio {spread_rate / single_rate:.2f} worst case, versions interleaved event by event")
    print(
        f"registry of {big.version_count} versions: {memory / 2**20:.1f} MiB resident "
        f"({memory / big.version_count / 1024:.1f} KiB per version), built in {build_s:.1f} s"
    )


if __name__ == "__main__":
    main()
