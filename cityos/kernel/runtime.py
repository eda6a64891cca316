"""Process plumbing shared by the service entrypoints: logging and graceful stop on signals."""

from __future__ import annotations

import logging
import signal
import threading


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT, so loops finish their batch, flush and commit."""
    stop = threading.Event()

    def _handler(signum: int, _frame: object) -> None:
        logging.getLogger("cityos").info("signal %s: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop
