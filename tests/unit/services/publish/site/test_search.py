"""The portal's search, pure: parameter caps, text matching in both languages, facets and their
counts, paging and the links that carry a search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.publish.site import search
from services.publish.site.search import Entry, Refusal, SearchQuery, parse_query

T0 = datetime(2025, 4, 1, tzinfo=UTC)


def entry(
    id: str,
    *,
    title_ja: str = "",
    title_en: str = "",
    description_ja: str = "",
    description_en: str = "",
    keywords: tuple[str, ...] = (),
    department: str = "fire",
    license: str = "CC-BY-4.0",
    formats: tuple[str, ...] = ("CSV", "JSON", "NDJSON"),
    stars: int = 3,
    internal: bool = False,
    updated: datetime | None = T0,
) -> Entry:
    return Entry(
        id=id, title_ja=title_ja or id, title_en=title_en or id, description_ja=description_ja,
        description_en=description_en, keywords=keywords, department=department, license=license,
        formats=formats, stars=stars, internal=internal, last_updated=updated, record_count=1,
    )  # fmt: skip


AED = entry(
    "aed",
    title_ja="AED設置箇所一覧",
    title_en="AED locations",
    description_ja="市内の自動体外式除細動器の設置場所",
    description_en="Where the automated external defibrillators are",
    keywords=("AED", "救命", "防災"),
    formats=("CSV", "JSON", "GeoJSON", "NDJSON"),
    stars=4,
)
SHELTERS = entry(
    "evacuation-space",
    title_ja="指定緊急避難場所一覧",
    title_en="Designated emergency evacuation sites",
    keywords=("防災", "避難場所"),
    department="crisis-management",
    formats=("CSV", "JSON", "GeoJSON", "NDJSON"),
    stars=4,
    updated=T0 + timedelta(days=2),
)
COPIER = entry(
    "copier-usage",
    title_ja="複合機利用状況",
    title_en="Copier usage",
    description_en="Pages printed per month",
    keywords=("DX", "ペーパーレス"),
    department="digital",
    internal=True,
    updated=None,
)
BUDGET = entry(
    "budget", title_ja="予算事業一覧", title_en="Budget lines", department="digital", license="CC0-1.0"
)
ALL = [AED, SHELTERS, COPIER, BUDGET]


def ids(result: search.SearchResult) -> list[str]:
    return [e.id for e in result.entries]


def run(**params: str | list[str]) -> search.SearchResult:
    items = [(k, v) for k, vs in params.items() for v in ([vs] if isinstance(vs, str) else vs)]
    parsed = parse_query(items)
    assert isinstance(parsed, SearchQuery), parsed
    return search.search(ALL, parsed)


# --- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("避難", ["evacuation-space"]),  # Japanese substring of a title
        ("除細動器", ["aed"]),  # Japanese description
        ("defibrillator", ["aed"]),  # English description, inside a longer word
        ("COPIER", ["copier-usage"]),  # case-insensitive
        ("ａｅｄ", ["aed"]),  # full-width letters typed with a Japanese input method
        ("防災", ["evacuation-space", "aed"]),  # a keyword; no title holds it, so the newest first
        ("防災　AED", ["aed"]),  # every term must match; an ideographic space separates them
        ("printed month", ["copier-usage"]),
        ("nowhere-at-all", []),
    ],
)
def test_text_matches_titles_descriptions_and_keywords_in_both_languages(q: str, expected: list[str]) -> None:
    assert ids(run(q=q)) == expected


def test_department_names_and_ids_are_not_searched_as_text() -> None:
    assert ids(run(q="crisis")) == []


def test_a_title_holding_the_text_ranks_first_then_the_newest() -> None:
    both = [
        entry("a", title_ja="避難所", updated=T0),
        entry("b", keywords=("避難所",), updated=T0 + timedelta(1)),
    ]
    parsed = parse_query([("q", "避難所")])
    assert isinstance(parsed, SearchQuery)
    assert ids(search.search(both, parsed)) == ["a", "b"]
    assert ids(search.search(both, SearchQuery())) == ["b", "a"]


# --- facets -------------------------------------------------------------------------------------


def test_facet_counts_are_the_results_carrying_each_value() -> None:
    result = run()
    counts = {f: {v.value: v.count for v in values} for f, values in result.facets.items()}
    assert counts["department"] == {"fire": 1, "crisis-management": 1, "digital": 2}
    assert counts["keyword"]["防災"] == 2
    assert counts["format"] == {"CSV": 4, "JSON": 4, "NDJSON": 4, "GeoJSON": 2}
    assert counts["stars"] == {"4": 2, "3": 2}
    assert counts["license"] == {"CC-BY-4.0": 3, "CC0-1.0": 1}
    # Most first, ties by value.
    assert [v.value for v in result.facets["department"]] == ["digital", "crisis-management", "fire"]


def test_selected_facets_all_hold_and_are_marked() -> None:
    result = run(keyword="防災", format="GeoJSON", department="fire")
    assert ids(result) == ["aed"]
    chosen = {(f, v.value) for f, values in result.facets.items() for v in values if v.selected}
    assert chosen == {("keyword", "防災"), ("format", "GeoJSON"), ("department", "fire")}
    assert ids(run(department=["fire", "digital"])) == []  # one department per dataset


def test_a_facet_and_text_combine() -> None:
    assert ids(run(q="lines", department="digital")) == ["budget"]
    assert ids(run(stars="4", license="CC-BY-4.0")) == ["evacuation-space", "aed"]


def test_long_facets_list_their_top_values_and_always_the_selected_one() -> None:
    many = [entry(f"d{i}", keywords=(f"k{i:02d}",) + (("common",) if i < 3 else ())) for i in range(40)]
    parsed = parse_query([("keyword", "k39")])
    assert isinstance(parsed, SearchQuery)
    assert [v.value for v in search.search(many, parsed).facets["keyword"]] == ["k39"]
    listed = search.search(many, SearchQuery()).facets["keyword"]
    assert len(listed) == search.FACET_LIST_LENGTH
    assert listed[0].value == "common" and listed[0].count == 3
    with_selected = search.facet_counts(many, [("keyword", "k39")])["keyword"]
    assert len(with_selected) == search.FACET_LIST_LENGTH + 1 and with_selected[-1].selected


entries_strategy = st.lists(
    st.builds(
        entry,
        id=st.text("abcdef", min_size=1, max_size=6),
        keywords=st.lists(st.sampled_from(["防災", "観光", "AED", "交通"]), max_size=3, unique=True).map(
            tuple
        ),
        department=st.sampled_from(["fire", "digital", "tourism"]),
        formats=st.sampled_from([("CSV", "JSON", "NDJSON"), ("CSV", "JSON", "GeoJSON", "NDJSON")]),
        stars=st.integers(1, 5),
        license=st.sampled_from(["CC-BY-4.0", "CC0-1.0"]),
    ),
    max_size=30,
    unique_by=lambda e: e.id,
)


@settings(max_examples=150, deadline=None)
@given(entries_strategy, st.lists(st.tuples(st.sampled_from(search.FACETS), st.sampled_from(
    ["防災", "fire", "GeoJSON", "3", "CC0-1.0", "digital", "観光"])), max_size=3))  # fmt: skip
def test_following_a_facet_link_gives_exactly_its_count(
    entries: list[Entry], selected: list[tuple[search.FacetName, str]]
) -> None:
    query = SearchQuery("", tuple(dict.fromkeys(selected)), 1)
    result = search.search(entries, query)
    for facet, values in result.facets.items():
        for value in values:
            followed = search.search(entries, query.adding(facet, value.value))
            assert followed.total == (result.total if value.selected else value.count)


# --- paging and links ---------------------------------------------------------------------------


def test_pages_of_twenty() -> None:
    many = [entry(f"d{i:02d}", updated=T0 + timedelta(minutes=i)) for i in range(45)]
    first = search.search(many, SearchQuery())
    last = search.search(many, SearchQuery(page=3))
    assert (first.total, first.pages, len(first.entries), len(last.entries)) == (45, 3, 20, 5)
    assert ids(first)[0] == "d44" and ids(last)[-1] == "d00"
    assert search.search(many, SearchQuery(page=4)).entries == ()
    assert search.search([], SearchQuery()).pages == 1


def test_a_link_carries_the_search_and_parses_back() -> None:
    query = SearchQuery("避難 場所", (("keyword", "防災"), ("format", "GeoJSON")), 2)
    href = query.href("/en/search")
    parts = urlsplit(href)
    assert parts.path == "/en/search"
    assert parse_query(parse_qsl(parts.query)) == query
    assert query.removing("keyword", "防災").selected == (("format", "GeoJSON"),)
    assert query.adding("stars", "4").page == 1 and query.without_filters() == SearchQuery("避難 場所")
    assert SearchQuery().href("/search") == "/search"


# --- caps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "parameter"),
    [
        ([("q", "x" * 201)], "q"),
        ([("keyword", f"k{i}") for i in range(search.MAX_SELECTED + 1)], "keyword"),
        ([("license", "L" * (search.MAX_VALUE_LENGTH + 1))], "license"),
        ([("page", "0")], "page"),
        ([("page", "-1")], "page"),
        ([("page", "1.5")], "page"),
        ([("page", "１")], "page"),  # a full-width digit is not a page number here
        ([("page", str(search.MAX_PAGE + 1))], "page"),
        ([("page", "9" * 5000)], "page"),
        ([("utm", "x")] * 51, "request"),
    ],
)
def test_parameters_over_a_cap_are_refused_naming_the_parameter(
    items: list[tuple[str, str]], parameter: str
) -> None:
    refused = parse_query(items)
    assert isinstance(refused, Refusal)
    assert refused.parameter == parameter
    assert refused.ja and refused.en and refused.ja != refused.en


def test_within_the_caps_a_query_is_read_as_given() -> None:
    items = [("q", "  AED\u3000救命 "), ("keyword", "防災"), ("keyword", "防災"), ("keyword", ""),
             ("page", str(search.MAX_PAGE)), ("utm_source", "x"), ("q", "x" * 200)]  # fmt: skip
    parsed = parse_query(items[:-1])
    assert parsed == SearchQuery("AED 救命", (("keyword", "防災"),), search.MAX_PAGE)
    assert isinstance(parse_query(items), SearchQuery)  # the last q wins, at exactly the cap
    many = [("department", f"d{i}") for i in range(search.MAX_SELECTED)]
    assert isinstance(parse_query(many), SearchQuery)


# --- home ---------------------------------------------------------------------------------------


def test_newest_and_most_used() -> None:
    assert [e.id for e in search.newest(ALL, 3)] == ["evacuation-space", "aed", "budget"]
    assert [e.id for e in search.newest(ALL, 10)][-1] == "copier-usage"  # never changed: last
    uses = {"aed": 5, "budget": 5, "copier-usage": 9, "evacuation-space": 0}
    assert [(e.id, n) for e, n in search.most_used(ALL, uses, 2)] == [("copier-usage", 9), ("aed", 5)]
    assert [e.id for e, _ in search.most_used(ALL, uses, 10)] == ["copier-usage", "aed", "budget"]
    assert search.department_counts(ALL) == {"fire": 1, "crisis-management": 1, "digital": 2}
