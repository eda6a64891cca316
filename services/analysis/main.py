"""Analysis service entrypoint: write every dataset's snapshot at start and then every
``snapshot_interval_s``, with ``/metrics``, ``/healthz`` and ``/readyz`` (ready once the first run
has ended). Wiring only: the run is ``runner.run_once``, the figures ``metrics.AnalysisMetrics``."""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import REGISTRY

from cityos.domain.analysis.snapshots import file_property_order
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.operations_http import start_operations_server
from cityos.kernel.runtime import configure_logging, stop_on_signals
from cityos.kernel.settings import Settings
from services.analysis.metrics import AnalysisMetrics
from services.analysis.runner import run_once

log = logging.getLogger("cityos.analysis")


def serve(settings: Settings) -> None:
    configure_logging()
    migrate(settings.database_url)
    sessions = session_factory(make_engine(settings.database_url))
    metrics = AnalysisMetrics(REGISTRY)
    ready = threading.Event()
    server = start_operations_server(settings.analysis_host, settings.analysis_port, ready, name="analysis")
    stop = stop_on_signals()
    log.info("snapshots into %s every %.0f s", settings.snapshot_dir, settings.snapshot_interval_s)
    try:
        while not stop.is_set():
            # Read each run: a schema version added to the files since shows in its order.
            order = file_property_order(settings.schemas_dir)
            report = run_once(sessions, settings.snapshot_dir, property_order=order, stop=stop)
            if stop.is_set():  # cut short: not a run to report
                break
            metrics.record_run(report.results, report.failed, seconds=report.seconds, ended_at=time.time())
            log.info(
                "snapshot run: %d datasets, %d rows, %d bytes in %.2f s, %d failed",
                len(report.results),
                sum(result.rows for result in report.results),
                sum(result.bytes for result in report.results),
                report.seconds,
                len(report.failed),
            )
            ready.set()
            stop.wait(max(settings.snapshot_interval_s, 1.0))
    finally:
        server.shutdown()
