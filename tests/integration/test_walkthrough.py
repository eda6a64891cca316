"""docs/walkthrough.md as a newcomer runs it: every shell block, in order, in one terminal, against a
real stack (Kafka, the four services, SQLite) on ports of its own; and the feed consumers of
docs/feeds.md against the feed the walkthrough created.

The only line not run as written is `make up`: the test starts the same services and sends the same
demo events itself, on free ports, and tells the walkthrough where through the variables it reads
(`CITYOS_PUBLISH_URL`, `CITYOS_FIXTURES`, `CITYOS_TOPIC_PREFIX`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cityos.kernel.kafka_access import KafkaAccess
from cityos.kernel.settings import REPO_ROOT
from tests.support import needs
from tests.support.fixtures_path import FIXTURES
from tests.support.stack import SERVICES, Stack
from tests.support.walkthrough import Step, Terminal, fenced_blocks, steps

WALKTHROUGH = REPO_ROOT / "docs" / "walkthrough.md"
FEEDS_DOC = REPO_ROOT / "docs" / "feeds.md"
STEPS = steps(WALKTHROUGH.read_text(encoding="utf-8"))
FEED_SECTION = "Consuming a feed"

# What each step must print besides exiting 0: proof that it did its job, not just that it ran.
EXPECTED_OUTPUT: dict[str, tuple[str, ...]] = {
    "0.": ('{"status":"ready"}',),
    "1.": ("rows accepted (validated)", "82"),
    "2.": ('"total":2', "２階正面入口", "AED設置箇所一覧"),
    "3.": ('"grantee": "general-affairs"', "snapshot jp.cityos.record.upserted", "events from"),
    "4.": ('"classification": "public"', '"records":['),
}


def _step_id(step: Step) -> str:
    return step.title.split(" ", 1)[0]


@pytest.fixture(scope="module")
def stack(kafka: KafkaAccess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """What `make up` starts: the four services on SQLite, with the demo events sent."""
    folder = tmp_path_factory.mktemp("walkthrough")
    environment = Stack(
        kafka=kafka,
        database_url=f"sqlite:///{folder / 'cityos.db'}",
        log_dir=folder,
    )
    try:
        environment.start("catalog")  # migrates and registers the schemas before the others read them
        environment.start(*(name for name in SERVICES if name != "catalog"))
        demo = environment.cli("demo")
        assert demo.returncode == 0, demo.stderr.decode()
        yield environment
    finally:
        environment.stop_all()


@pytest.fixture(scope="module")
def terminal(stack: Stack) -> Terminal:
    """The newcomer's terminal: the stack's settings and the variables the walkthrough reads."""
    env = {
        **stack.env,
        "CITYOS_PUBLISH_URL": stack.url("publish"),
        "CITYOS_FIXTURES": str(FIXTURES),
        "COLUMNS": "120",
    }
    return Terminal(cwd=REPO_ROOT, env=env)


def _without_make_up(step: Step) -> str:
    first, *rest = step.blocks
    if step is STEPS[0]:
        assert first.strip() == "make up", (
            "the walkthrough starts with `make up`, which the stack fixture stands for"
        )
        return "\n".join(rest)
    return step.script


def test_walkthrough_has_its_steps() -> None:
    assert [_step_id(step) for step in STEPS] == list(EXPECTED_OUTPUT)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("step", STEPS, ids=_step_id)
def test_walkthrough_step(step: Step, terminal: Terminal) -> None:
    result = terminal.run(_without_make_up(step))
    output = result.stdout + result.stderr
    assert result.returncode == 0, "\n".join(terminal.transcript)
    for expected in EXPECTED_OUTPUT[_step_id(step)]:
        assert expected in output, f"{expected!r} missing from:\n{output}"


def _feed_block(language: str) -> str:
    blocks = [
        block.text
        for block in fenced_blocks(FEEDS_DOC.read_text(encoding="utf-8"))
        if block.section == FEED_SECTION and block.language == language
    ]
    assert len(blocks) == 1, f"docs/feeds.md '{FEED_SECTION}' holds one {language} block"
    return blocks[0]


def test_walkthrough_consumer_is_the_one_in_feeds_doc() -> None:
    assert _feed_block("python") in WALKTHROUGH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def feed_terminal(terminal: Terminal) -> Terminal:
    """The terminal once the walkthrough has created its feed (walked here when run on its own)."""
    if "FEED_TOPIC" not in terminal.env:
        for step in STEPS[:4]:
            assert terminal.run(_without_make_up(step)).returncode == 0, "\n".join(terminal.transcript)
    return terminal


@pytest.mark.timeout(300)
def test_feeds_doc_python_consumer(feed_terminal: Terminal, tmp_path: Path) -> None:
    script = tmp_path / "consumer.py"
    script.write_text(_feed_block("python"), encoding="utf-8")
    # A group of its own: the walkthrough's reader has already consumed the feed in its group.
    env = {**feed_terminal.env, "FEED_GROUP": f"{feed_terminal.env['FEED_TOPIC']}.doc-check"}
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "python"), str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "snapshot jp.cityos.record.upserted" in result.stdout


@contextmanager
def newer_librdkafka() -> Iterator[str]:
    """A folder holding confluent-kafka's bundled librdkafka under the name kcat links against."""
    import confluent_kafka

    bundled = sorted(
        (Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs").glob("librdkafka*.so*")
    )
    if not bundled:
        needs.unavailable("confluent-kafka's wheel carries no librdkafka to run kcat with")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "librdkafka.so.1").symlink_to(bundled[0])
        yield folder


@pytest.mark.timeout(300)
def test_feeds_doc_kcat_consumer(feed_terminal: Terminal) -> None:
    if shutil.which("kcat") is None:
        needs.unavailable("kcat not installed (Debian package kcat)")
    # Debian's kcat links librdkafka 2.0.2, whose SCRAM exchange fails: run it on the newer library
    # confluent-kafka ships (as docs/feeds.md tells readers to).
    with newer_librdkafka() as library_path:
        feed_terminal.env["LD_LIBRARY_PATH"] = library_path
        try:
            result = feed_terminal.run(_feed_block("sh"), timeout_s=120)
        finally:
            del feed_terminal.env["LD_LIBRARY_PATH"]
    assert result.returncode == 0, result.stderr
    assert "cityos_feed_phase=snapshot" in result.stdout
    assert '"type":"jp.cityos.record.upserted"' in result.stdout.replace(" ", "")
