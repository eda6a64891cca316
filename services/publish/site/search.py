"""The portal's dataset search: text over both languages, facets with counts, paging. Pure.

Facets combine like CKAN's: every selected value must hold (two keywords means both), and a facet
value's count is how many of the current results carry it, so following a facet link never leads to
fewer results than the link promised. Text matching is the CKAN action API's (``ckan.matches_text``).
Every parameter has a cap: a request over one is refused before any work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from urllib.parse import urlencode

from cityos.domain.readmodel.query import MAX_Q_LENGTH
from services.publish import param_caps
from services.publish.ckan import folded, matches_text

FacetName = Literal["department", "keyword", "format", "stars", "license"]
FACETS: Final[tuple[FacetName, ...]] = ("department", "keyword", "format", "stars", "license")
PAGE_SIZE: Final = 20
# Far above real use (a catalog of hundreds of datasets has tens of pages; a person picks a few
# facets): the caps bound the work of a crafted URL, never a visitor's search.
MAX_PAGE: Final = 1_000
MAX_SELECTED: Final = 20
MAX_VALUE_LENGTH: Final = 200
# Facet values listed per facet (the selected ones are always listed too): keywords can be many.
FACET_LIST_LENGTH: Final = 15


@dataclass(frozen=True, slots=True)
class Entry:
    """What the search reads of one dataset the caller may read (as the API's listing shows it)."""

    id: str
    title_ja: str
    title_en: str
    description_ja: str
    description_en: str
    keywords: tuple[str, ...]
    department: str
    license: str
    formats: tuple[str, ...]  # display names: CSV, JSON, GeoJSON, NDJSON
    stars: int
    internal: bool
    last_updated: datetime | None
    record_count: int

    def values(self, facet: FacetName) -> tuple[str, ...]:
        if facet == "department":
            return (self.department,)
        if facet == "keyword":
            return self.keywords
        if facet == "format":
            return self.formats
        if facet == "stars":
            return (str(self.stars),)
        return (self.license,)

    def text_parts(self) -> tuple[str, ...]:
        return (self.title_ja, self.title_en, self.description_ja, self.description_en, *self.keywords)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    q: str = ""
    selected: tuple[tuple[FacetName, str], ...] = ()
    page: int = 1

    def items(self, *, page: int | None = None) -> list[tuple[str, str]]:
        """The query string's items (``page`` only when not the first)."""
        items: list[tuple[str, str]] = [("q", self.q)] if self.q else []
        items += list(self.selected)
        number = self.page if page is None else page
        if number > 1:
            items.append(("page", str(number)))
        return items

    def href(self, path: str, *, page: int | None = None) -> str:
        items = self.items(page=page)
        return f"{path}?{urlencode(items)}" if items else path

    def adding(self, facet: FacetName, value: str) -> SearchQuery:
        return SearchQuery(self.q, (*self.selected, (facet, value)), 1)

    def removing(self, facet: FacetName, value: str) -> SearchQuery:
        return SearchQuery(self.q, tuple(s for s in self.selected if s != (facet, value)), 1)

    def without_filters(self) -> SearchQuery:
        return SearchQuery(self.q, (), 1)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A query over a cap or malformed: the parameter, and the problem in Japanese and English."""

    parameter: str
    ja: str
    en: str


def parse_query(items: Sequence[tuple[str, str]]) -> SearchQuery | Refusal:
    """The search a query string asks for, or why it is refused. Unknown parameters are ignored
    (trackers add their own), but counted against the cap on parameters."""
    if len(items) > param_caps.MAX_PARAMETERS:
        n = param_caps.MAX_PARAMETERS
        return Refusal("request", f"パラメータは {n} 個までです", f"at most {n} parameters")
    q = ""
    page = 1
    selected: list[tuple[FacetName, str]] = []
    for name, value in items:
        if name == "q":
            if len(value) > MAX_Q_LENGTH:
                return Refusal(
                    "q",
                    f"キーワードは {MAX_Q_LENGTH} 文字までです",
                    f"at most {MAX_Q_LENGTH} characters of text",
                )
            q = " ".join(value.split())
        elif name == "page":
            number = _page_number(value)
            if number is None:
                return Refusal(
                    "page",
                    f"ページは 1 から {MAX_PAGE} の整数です",
                    f"page is a whole number from 1 to {MAX_PAGE}",
                )
            page = number
        elif name in FACETS:
            facet: FacetName = name  # type: ignore[assignment]  # narrowed by the membership test
            if len(value) > MAX_VALUE_LENGTH:
                return Refusal(
                    name,
                    f"{name} の値は {MAX_VALUE_LENGTH} 文字までです",
                    f"{name} is at most {MAX_VALUE_LENGTH} characters",
                )
            if value and (facet, value) not in selected:
                selected.append((facet, value))
            if len(selected) > MAX_SELECTED:
                return Refusal(
                    name,
                    f"絞り込みは合計 {MAX_SELECTED} 個までです",
                    f"at most {MAX_SELECTED} filters in all",
                )
    return SearchQuery(q, tuple(selected), page)


def _page_number(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        return None
    number = int(text)
    return number if 1 <= number <= MAX_PAGE else None


@dataclass(frozen=True, slots=True)
class FacetValue:
    value: str
    count: int
    selected: bool


@dataclass(frozen=True, slots=True)
class SearchResult:
    total: int
    entries: tuple[Entry, ...]  # the current page
    facets: Mapping[FacetName, tuple[FacetValue, ...]]
    page: int
    pages: int


def matches(entry: Entry, query: SearchQuery) -> bool:
    if not all(value in entry.values(facet) for facet, value in query.selected):
        return False
    return matches_text(entry.text_parts(), query.q)


def _rank(q: str) -> Callable[[Entry], tuple[bool, float, str]]:
    """Titles that hold the whole text first, then the most recently changed, then by id."""
    wanted = folded(q)

    def key(entry: Entry) -> tuple[bool, float, str]:
        in_title = bool(wanted) and (wanted in folded(entry.title_ja) or wanted in folded(entry.title_en))
        changed = entry.last_updated.timestamp() if entry.last_updated is not None else float("-inf")
        return (not in_title, -changed, entry.id)

    return key


def facet_counts(
    found: Iterable[Entry], selected: Iterable[tuple[FacetName, str]]
) -> dict[FacetName, tuple[FacetValue, ...]]:
    """Per facet, its values among ``found`` with their counts (most first, then by value), the
    first ``FACET_LIST_LENGTH`` of them plus any selected one."""
    counters: dict[FacetName, Counter[str]] = {facet: Counter() for facet in FACETS}
    for entry in found:
        for facet in FACETS:
            counters[facet].update(set(entry.values(facet)))
    chosen = set(selected)
    facets: dict[FacetName, tuple[FacetValue, ...]] = {}
    for facet, counter in counters.items():
        ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
        shown = [
            FacetValue(value, count, (facet, value) in chosen)
            for rank, (value, count) in enumerate(ordered)
            if rank < FACET_LIST_LENGTH or (facet, value) in chosen
        ]
        facets[facet] = tuple(shown)
    return facets


def search(entries: Iterable[Entry], query: SearchQuery) -> SearchResult:
    found = sorted((e for e in entries if matches(e, query)), key=_rank(query.q))
    pages = max(1, -(-len(found) // PAGE_SIZE))
    start = (query.page - 1) * PAGE_SIZE
    return SearchResult(
        total=len(found),
        entries=tuple(found[start : start + PAGE_SIZE]),
        facets=facet_counts(found, query.selected),
        page=query.page,
        pages=pages,
    )


def newest(entries: Iterable[Entry], count: int) -> list[Entry]:
    """The most recently changed datasets (never-changed ones last)."""
    return sorted(entries, key=_rank(""))[:count]


def most_used(entries: Iterable[Entry], uses: Mapping[str, int], count: int) -> list[tuple[Entry, int]]:
    """The datasets with the most uses (none unused), most first, ties by id."""
    used = [(entry, uses.get(entry.id, 0)) for entry in entries]
    ranked = sorted((pair for pair in used if pair[1] > 0), key=lambda pair: (-pair[1], pair[0].id))
    return ranked[:count]


def department_counts(entries: Iterable[Entry]) -> Counter[str]:
    return Counter(entry.department for entry in entries)
