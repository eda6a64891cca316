"""The release gate on the seeded 100,000-record synthetic dataset (k=5, 5% cap), and its edge cases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pycanon import anonymity

from cityos.domain.anonymize.gate import GateOutcome, pseudonyms, run_gate, shuffled_order, uniform_indices
from cityos.domain.anonymize.profile import Profile, load_profile, parse_profile, profile_path
from cityos.domain.anonymize.search import Lattice, Model
from cityos.domain.anonymize.synthetic import synthetic_moves
from cityos.domain.anonymize.verify import ROW_ID_PATTERN, read_release
from cityos.kernel.settings import REPO_ROOT

SCHEMA = json.loads((REPO_ROOT / "schemas" / "resident-moves" / "v1.schema.json").read_text(encoding="utf-8"))
PROFILE = load_profile(profile_path("resident-moves"))
SEED = 2026


@dataclass
class Released:
    source: pd.DataFrame
    outcome: GateOutcome
    frame: pd.DataFrame
    path: Path


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    source = synthetic_moves(100_000, seed=SEED)
    path = tmp_path_factory.mktemp("release") / "resident-moves.csv"
    outcome = run_gate(source, PROFILE, SCHEMA, path=path)
    assert outcome.passed, outcome.reasons
    yield Released(source, outcome, read_release(path), path)


def _quasi() -> list[str]:
    return [q.name for q in PROFILE.quasi]


def test_100k_release_passes_with_the_searched_levels_and_loss(released: Released) -> None:
    outcome = released.outcome
    assert outcome.levels == {
        "年齢": 3,
        "性別": 0,
        "地域": 1,
        "異動時期": 2,
        "異動事由": 0,
        "前住所地_区分": 2,
        "世帯人数": 1,
    }
    assert outcome.node is not None
    assert outcome.node.loss == pytest.approx(0.150289, abs=1e-6)
    assert outcome.node.suppressed == 3903 <= 0.05 * 100_000
    assert outcome.released_records == len(released.frame) == 100_000 - 3903
    search = outcome.search
    assert search is not None and search.evaluated < search.lattice_size / 10  # the bound stops early


def test_file_reread_from_disk_is_k_anonymous_counting_missing_values(released: Released) -> None:
    frame = released.frame
    sizes = frame.groupby(_quasi(), dropna=False).size()
    assert sizes.sum() == len(frame)
    assert sizes.min() >= PROFILE.k
    # Missing 前住所地 (births, deaths, moves out) are released as empty cells and counted as a class.
    assert (frame["前住所地_区分"] == "").sum() > 0


def test_sensitive_bound_holds_over_non_benign_values(released: Released) -> None:
    frame = released.frame
    attribute = PROFILE.sensitive.attribute
    sizes = frame.groupby(_quasi()).size()
    cared = frame[frame[attribute] != "非該当"]
    per_value = cared.groupby([*_quasi(), attribute]).size()
    share = per_value / sizes.reindex(per_value.index.droplevel(attribute)).to_numpy()
    assert share.max() <= PROFILE.sensitive.alpha


def test_pycanon_agrees(released: Released) -> None:
    # pycanon miscomputes when the index is not 0..n-1: reset it.
    frame = released.frame.reset_index(drop=True)
    quasi = _quasi()
    assert anonymity.k_anonymity(frame, quasi) == released.outcome.node.min_class  # type: ignore[union-attr]
    assert anonymity.k_anonymity(frame, quasi) >= PROFILE.k
    assert anonymity.l_diversity(frame, quasi, [PROFILE.sensitive.attribute]) == released.outcome.distinct_l
    # The bound ignores the benign value: give each benign row its own token so it never forms a
    # majority, then pycanon's alpha is the largest share of one care level in a class.
    attribute = PROFILE.sensitive.attribute
    tokens = frame[attribute].where(
        frame[attribute] != "非該当", pd.Series("benign-" + frame.index.astype(str))
    )
    alpha, k = anonymity.alpha_k_anonymity(frame.assign(**{attribute: tokens}), quasi, [attribute])
    assert k >= PROFILE.k
    assert alpha <= PROFILE.sensitive.alpha


def test_no_identifier_or_index_column_and_row_order_is_shuffled(released: Released) -> None:
    frame = released.frame
    assert list(frame.columns) == PROFILE.output_columns
    assert not set(frame.columns) & set(PROFILE.delete)
    assert frame["仮ID"].is_unique and frame["仮ID"].str.fullmatch(r"R[a-z]{12}").all()
    # The source is in register order (by 異動日): the release's order must not follow it.
    quarter = frame["異動時期"].rank(method="dense")
    position = pd.Series(np.arange(len(frame)), dtype=float)
    assert abs(quarter.corr(position, method="spearman")) < 0.02


def test_prosecutor_risk_at_most_one_in_k(released: Released) -> None:
    """Join the release with every source record's quasi-identifiers, generalised as released."""
    hierarchies = released.outcome.hierarchies
    levels = released.outcome.node.levels  # type: ignore[union-attr]
    attacker = pd.DataFrame(
        {h.name: h.labels_at(level) for h, level in zip(hierarchies, levels, strict=True)}
    )
    matches = released.frame.groupby(_quasi()).size().rename("matches").reset_index()
    joined = attacker.merge(matches, on=_quasi(), how="left")["matches"].fillna(0)
    found = joined[joined > 0]
    assert len(found) == len(released.frame)  # every released row is found by its own source record
    assert (1 / found).max() <= 1 / PROFILE.k


def test_search_finds_the_optimum_of_the_whole_lattice() -> None:
    """Exhaustive evaluation of every node on a smaller dataset: the search must pick the best."""
    source = synthetic_moves(3_000, seed=5)
    from cityos.domain.anonymize.gate import _sensitive_codes
    from cityos.domain.anonymize.profile import build_hierarchies
    from cityos.domain.anonymize.search import search

    lattice = Lattice(build_hierarchies(PROFILE, source), *_sensitive_codes(source, PROFILE))
    model = Model(PROFILE.k, PROFILE.sensitive.alpha, int(0.05 * len(source)))
    result = search(lattice, model)
    import itertools

    passing = []
    for levels in itertools.product(*lattice.ranges()):
        node, _ = lattice.evaluate(levels, model)
        if node.suppressed <= model.max_suppressed:
            passing.append((node.loss, node.levels))
    assert result.best is not None
    assert (result.best.loss, result.best.levels) == min(passing)


def _uniform(count: int) -> pd.DataFrame:
    """``count`` records identical in every quasi-identifier (one class), benign care level."""
    frame = synthetic_moves(count, seed=9)
    first = frame.iloc[0]
    for column in ("性別", "住所_区", "住所_町丁目", "異動日", "異動事由", "前住所地_都道府県", "世帯人数"):
        frame[column] = first[column]
    frame["要介護度"] = "非該当"
    frame["生年月日"] = "1990-01-01"
    return frame


def test_a_116_year_old_is_released_as_90_or_over_in_a_class_of_k(tmp_path: Path) -> None:
    frame = _uniform(12)
    frame["異動日"] = "2025-06-01"
    frame["生年月日"] = [f"{1935 - i}-01-01" for i in range(11)] + ["1909-01-01"]  # ages 90..100 and 116
    outcome = run_gate(frame, PROFILE, SCHEMA, path=tmp_path / "r.csv")
    assert outcome.passed, outcome.reasons
    released = read_release(tmp_path / "r.csv")
    assert outcome.levels["年齢"] == 0 and outcome.node is not None and outcome.node.suppressed == 0
    assert (released["年齢"] == "90以上").sum() == 12
    assert not released["年齢"].str.contains("116").any()


def test_a_lone_missing_quasi_identifier_is_not_missed(tmp_path: Path) -> None:
    frame = _uniform(40)
    frame.loc[17, "性別"] = None
    outcome = run_gate(frame, PROFILE, SCHEMA, path=tmp_path / "r.csv")
    assert outcome.passed, outcome.reasons
    released = read_release(tmp_path / "r.csv")
    # A groupby that drops missing keys would see 39 records in one class and nothing to do.
    assert outcome.node is not None and outcome.node.suppressed == 1
    assert len(released) == 39 and set(released["性別"]) == {frame.loc[0, "性別"]}


def test_an_impossible_dataset_is_refused_with_every_reason_and_nothing_written(tmp_path: Path) -> None:
    frame = synthetic_moves(200, seed=3)
    frame["要介護度"] = np.where(np.arange(200) % 5 < 3, "要介護5", "非該当")  # 60% one care level
    path = tmp_path / "r.csv"
    outcome = run_gate(frame, PROFILE, SCHEMA, path=path)
    assert not outcome.passed
    assert not path.exists()
    assert "no generalisation meets k=5 and alpha=0.5" in outcome.reasons[0]
    assert any("closest generalisation" in reason for reason in outcome.reasons)
    few = run_gate(frame.head(3), PROFILE, SCHEMA, path=path)
    assert not few.passed and not path.exists() and "fewer than k=5" in few.reasons[0]


def test_a_profile_that_leaves_identifiers_is_refused_with_every_reason(tmp_path: Path) -> None:
    document = dict(PROFILE.document)
    document["delete"] = [c for c in PROFILE.delete if c not in ("氏名", "住所_番地")]
    document["keep"] = ["全国地方公共団体コード", "住所_町丁目"]
    outcome = run_gate(synthetic_moves(50, seed=1), parse_profile(document), SCHEMA, path=tmp_path / "r.csv")
    assert not outcome.passed
    assert "direct identifier 氏名 must be listed in delete" in outcome.reasons
    assert "direct identifier 住所_番地 must be listed in delete" in outcome.reasons
    assert "住所_町丁目 is kept as is but the schema marks it 'quasi'" in outcome.reasons


def test_same_input_gives_the_same_rows_in_a_fresh_order_under_fresh_pseudonyms(tmp_path: Path) -> None:
    # The generalisation is deterministic; order and pseudonyms come from the OS's generator, so
    # two runs over the same records share neither (nothing recorded about a run can re-link rows).
    source = synthetic_moves(5_000, seed=4)
    first, second = (read_release(path) for path in _twice(source, tmp_path))
    assert not set(first["仮ID"]) & set(second["仮ID"])
    columns = [c for c in first.columns if c != "仮ID"]
    assert first[columns].value_counts().sort_index().equals(second[columns].value_counts().sort_index())
    assert not first[columns].equals(second[columns])  # 5,000 rows in the same order: never by chance


def _twice(source: pd.DataFrame, folder: Path) -> list[Path]:
    paths = [folder / "a.csv", folder / "b.csv"]
    for path in paths:
        assert run_gate(source, PROFILE, SCHEMA, path=path).passed
    return paths


def test_a_partner_file_holds_exactly_the_asked_items(tmp_path: Path) -> None:
    path = tmp_path / "partner.csv"
    outcome = run_gate(
        synthetic_moves(5_000, seed=4), PROFILE, SCHEMA, path=path, items=["地域", "年齢", "性別"]
    )
    assert outcome.passed, outcome.reasons
    assert list(read_release(path).columns) == ["仮ID", "年齢", "性別", "地域"] == outcome.columns
    refused = run_gate(synthetic_moves(50, seed=1), PROFILE, SCHEMA, path=tmp_path / "x.csv", items=["氏名"])
    assert not refused.passed and "items not offered by this release profile: 氏名" in refused.reasons
    assert not (tmp_path / "x.csv").exists()


def test_pseudonyms_and_indices_are_uniform_and_distinct() -> None:
    ids = pseudonyms(20_000)
    assert len(set(ids)) == 20_000 and all(ROW_ID_PATTERN.fullmatch(i) for i in ids[:100])
    counts = np.bincount(uniform_indices(230_000, 23), minlength=23)
    assert counts.min() > 9_000 and counts.max() < 11_000  # 10,000 expected per letter
    assert sorted(shuffled_order(1_000)) == list(range(1_000))


def _profile(**changes: object) -> Profile:
    return parse_profile({**PROFILE.document, **changes})


def test_a_higher_k_generalises_further(tmp_path: Path) -> None:
    source = synthetic_moves(5_000, seed=4)
    low = run_gate(source, PROFILE, SCHEMA, path=tmp_path / "a.csv")
    high = run_gate(source, _profile(k=20), SCHEMA, path=tmp_path / "b.csv")
    assert low.node is not None and high.node is not None
    assert high.node.loss > low.node.loss
    assert read_release(tmp_path / "b.csv").groupby(_quasi(), dropna=False).size().min() >= 20
