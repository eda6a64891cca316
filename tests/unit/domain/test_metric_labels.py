"""Dataset label values for /metrics: public datasets by id, everything else folded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain.metric_labels import NON_PUBLIC, PublicDatasetLabels, dataset_label
from cityos.kernel.db.models import Dataset
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT
from services.catalog.store import sync_schema_set


@pytest.mark.parametrize(
    ("classification", "label"),
    [
        ("public", "ds"),
        ("internal", NON_PUBLIC),
        ("personal", NON_PUBLIC),
        ("partner", NON_PUBLIC),
        (None, NON_PUBLIC),
    ],
)
def test_only_public_datasets_are_named(classification: str | None, label: str) -> None:
    assert dataset_label("ds", classification) == label


def test_labels_follow_the_catalog_within_their_interval(engine: Engine) -> None:
    sessions = sessionmaker(engine)
    with sessions() as session:
        sync_schema_set(session, schema_set=load_schema_dir(REPO_ROOT / "schemas"), now=datetime.now(UTC))
        session.commit()
    clock = [0.0]
    labels = PublicDatasetLabels(sessions, ttl_s=5.0, clock=lambda: clock[0])
    assert (labels("aed"), labels("copier-usage"), labels("resident-moves")) == (
        "aed",
        NON_PUBLIC,
        NON_PUBLIC,
    )
    assert labels("never-registered") == NON_PUBLIC
    with Session(engine) as session, session.begin():
        session.execute(update(Dataset).where(Dataset.id == "aed").values(classification="internal"))
    assert labels("aed") == "aed"  # still within the interval
    clock[0] = 5.0
    assert labels("aed") == NON_PUBLIC
