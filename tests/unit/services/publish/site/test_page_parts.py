"""The dataset page's fast paths: the preview rows written in one join must be the markup the
template's own loop writes, whatever the cells hold; the kept parts stay within their bound."""

from __future__ import annotations

import pytest

from services.publish.site import dataset_view as view
from services.publish.site.page_parts import PartCache
from services.publish.site.templating import environment

# The loop the page's template ran before, with the site's own environment (autoescape on).
TEMPLATE_LOOP = """\
  <tbody>
  {% for row in rows %}
    <tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
  {% endfor %}
  </tbody>"""


def _by_template(rows: list[tuple[str, ...]]) -> str:
    return environment.from_string(TEMPLATE_LOOP).render(rows=rows)


def _by_join(rows: list[tuple[str, ...]]) -> str:
    return environment.from_string("  <tbody>\n{{ html }}  </tbody>").render(
        html=view.preview_rows_html(rows)
    )


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [("a",)],
        [("公衆トイレ", "3", ""), ("", "", "")],
        [("<script>alert(1)</script>", "a & b", "\"quoted\" 'single'"), ("&amp;", ">", "<")],
        # The one-pass separators inside a record's own text: escaped cell by cell instead.
        [("before\x00after", "x"), ("y", "z")],
        [("a\x01b", "c"), ("d", "\x00")],
        [("改行\nあり", "タブ\tあり")],
        [()],
        [(), ()],
    ],
)
def test_joined_rows_are_the_template_loop(rows: list[tuple[str, ...]]) -> None:
    assert _by_join(rows) == _by_template(rows)


def test_joined_rows_escape_markup() -> None:
    html = str(view.preview_rows_html([("<b>x</b>", "\x00<i>")]))
    assert "<b>" not in html and "<i>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_preview_cells_are_cell_texts_in_column_order() -> None:
    documents = [{"b": 1.5, "a": "x", "c": None, "d": [1, "二"], "e": True}]
    assert view.preview_cells(documents, ["a", "b", "c", "d", "e", "missing"]) == (
        ("x", "1.5", "", '[1,"二"]', "true", ""),
    )


def test_part_cache_keeps_the_most_recently_used_within_its_size() -> None:
    cache: PartCache[str] = PartCache(size=2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # now the most recent
    cache.put("c", "C")
    assert len(cache) == 2
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == ("A", "C")


def test_part_cache_makes_a_missing_part_once() -> None:
    cache: PartCache[str] = PartCache()
    made: list[str] = []

    def make() -> str:
        made.append("x")
        return "part"

    assert cache.get_or_make(("aed", "ja", 1), make) == "part"
    assert cache.get_or_make(("aed", "ja", 1), make) == "part"
    assert cache.get_or_make(("aed", "ja", 2), make) == "part"
    assert made == ["x", "x"]
