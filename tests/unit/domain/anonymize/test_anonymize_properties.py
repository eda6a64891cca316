"""Property: whatever the records (sizes, k, missing values anywhere), the gate either writes a
file that is k-anonymous and within the sensitive bound when re-read, or refuses and writes nothing."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityos.domain.anonymize.gate import run_gate
from cityos.domain.anonymize.profile import load_profile, parse_profile, profile_path
from cityos.domain.anonymize.synthetic import synthetic_moves
from cityos.domain.anonymize.verify import read_release
from cityos.kernel.settings import REPO_ROOT

SCHEMA = json.loads((REPO_ROOT / "schemas" / "resident-moves" / "v1.schema.json").read_text(encoding="utf-8"))
PROFILE = load_profile(profile_path("resident-moves"))
BLANKABLE = ("生年月日", "性別", "住所_区", "異動日", "異動事由", "前住所地_都道府県", "世帯人数")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(1, 400),
    seed=st.integers(0, 10_000),
    k=st.integers(2, 12),
    cap=st.sampled_from([0.0, 0.02, 0.1]),
    blank_share=st.floats(0, 0.2),
)
def test_gate_output_is_always_safe_or_absent(
    size: int, seed: int, k: int, cap: float, blank_share: float
) -> None:
    frame = synthetic_moves(size, seed=seed)
    rng = np.random.default_rng(seed)
    for column in BLANKABLE:  # missing values anywhere, as real registers have
        blank = rng.random(size) < blank_share
        frame[column] = frame[column].astype(object)
        frame.loc[blank, column] = None
    profile = parse_profile({**PROFILE.document, "k": k, "max_suppression": cap})
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "release.csv"
        outcome = run_gate(frame, profile, SCHEMA, path=path)
        if not outcome.passed:
            assert outcome.reasons and not path.exists()
            return
        released = read_release(path)
    quasi = [q.name for q in profile.quasi]
    assert released.groupby(quasi, dropna=False).size().min() >= k
    assert outcome.node is not None and outcome.node.suppressed <= int(cap * size)
    assert len(released) == size - outcome.node.suppressed
    cared = released[released["要介護度"] != "非該当"]
    if not cared.empty:
        per_value = cared.groupby([*quasi, "要介護度"], dropna=False).size()
        sizes = released.groupby(quasi, dropna=False).size()
        assert (per_value / sizes.reindex(per_value.index.droplevel("要介護度")).to_numpy()).max() <= 0.5
