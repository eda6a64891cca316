"""What a dataset's page shows, built from plain values: no session, no request. Pure.

``dataset_page`` reads the catalog and hands the rows, the schema document, the quality rating and
the usage counts to these builders; each returns small frozen values the template lays out. The
page's own words in Japanese and English live here too (``WORDS``), beside the code that uses them.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final, Literal
from urllib.parse import quote, urlencode

from markupsafe import Markup, escape

from services.publish.render import cell_text

Lang = Literal["ja", "en"]

# The city's own day: usage per day and "last changed" are read in Japan Standard Time (no DST).
JST: Final = timezone(timedelta(hours=9), "JST")

# The preview is a look at the data, not a download: a small page by default and a cap that keeps
# one rendering of the HTML table cheap (the records API and exports serve large pages).
PREVIEW_DEFAULT_LIMIT: Final = 20
PREVIEW_MAX_LIMIT: Final = 100
# Parameters that choose a representation of the records API; the page is always HTML.
REPRESENTATION_PARAMETERS: Final = frozenset({"format", "bom", "excel"})
# What an export refuses (it is the whole filtered dataset) besides the representation.
PAGING_PARAMETERS: Final = frozenset({"limit", "offset", "cursor"})
# Guards of the schema walk: a schema is small, but a hostile or cyclic one must not stall a page.
MAX_SCHEMA_DEPTH: Final = 8
MAX_SCHEMA_ROWS: Final = 500
USAGE_DAYS: Final = 30

WORDS: Final[dict[str, dict[Lang, str]]] = {
    "not_found.title": {"ja": "データセットが見つかりません", "en": "Dataset not found"},
    "not_found.body": {
        "ja": "このアドレスで閲覧できるデータセットはありません。アドレスを確かめるか、検索してください。",
        "en": "There is no dataset you may read at this address. Check the address, or search the catalog.",
    },
    "not_found.search": {"ja": "データセットを検索する", "en": "Search datasets"},
    "about": {"ja": "概要", "en": "About"},
    "publisher": {"ja": "公開部局", "en": "Publisher"},
    "licence": {"ja": "ライセンス", "en": "Licence"},
    "frequency": {"ja": "更新頻度", "en": "Update frequency"},
    "last_change": {"ja": "最終更新", "en": "Last change"},
    "never_changed": {"ja": "まだレコードがありません", "en": "No records yet"},
    "records_count": {"ja": "レコード数", "en": "Records"},
    "keywords": {"ja": "キーワード", "en": "Keywords"},
    "no_keywords": {"ja": "なし", "en": "None"},
    "internal.note": {
        "ja": "このデータセットは庁内限定です。公開されていません。",
        "en": "This dataset is internal to the city's departments. It is not published.",
    },
    "quality": {"ja": "品質", "en": "Quality"},
    "stars": {"ja": "5つ星オープンデータ", "en": "5-star open data"},
    "stars.value": {"ja": "{stars} / 5 つ星", "en": "{stars} of 5 stars"},
    "star.met": {"ja": "達成", "en": "Met"},
    "star.unmet": {"ja": "未達成", "en": "Not met"},
    "metadata": {"ja": "メタデータの充実度", "en": "Metadata quality"},
    "metadata.value": {"ja": "{score} 点（100点満点）", "en": "{score} out of 100"},
    "metadata.missing": {"ja": "不足している項目", "en": "Missing"},
    "metadata.complete": {"ja": "不足している項目はありません。", "en": "Nothing is missing."},
    "schema": {"ja": "項目の定義（スキーマ）", "en": "Fields (schema)"},
    "schema.caption": {"ja": "項目の一覧（バージョン {version}）", "en": "Fields (version {version})"},
    "schema.none": {"ja": "スキーマはまだ登録されていません。", "en": "No schema has been registered yet."},
    "schema.truncated": {
        "ja": "項目が多いため、最初の {count} 項目だけを表示しています。",
        "en": "Only the first {count} fields are shown.",
    },
    "col.field": {"ja": "項目名", "en": "Field"},
    "col.title": {"ja": "表示名", "en": "Title"},
    "col.type": {"ja": "型", "en": "Type"},
    "col.required": {"ja": "必須", "en": "Required"},
    "col.description": {"ja": "説明", "en": "Description"},
    "yes": {"ja": "必須", "en": "Yes"},
    "no": {"ja": "任意", "en": "No"},
    "preview": {"ja": "データのプレビュー", "en": "Data preview"},
    "preview.caption": {
        "ja": "{title}：{total} 件中 {first}〜{last} 件目",
        "en": "{title}: records {first} to {last} of {total}",
    },
    "preview.caption_empty": {
        "ja": "{title}：該当するレコードはありません",
        "en": "{title}: no matching records",
    },
    "preview.region": {
        "ja": "プレビューの表（横にスクロールできます）",
        "en": "Preview table (scrolls sideways)",
    },
    "preview.empty": {"ja": "条件に合うレコードはありません。", "en": "No records match."},
    "filter": {"ja": "絞り込み", "en": "Filter"},
    "filter.q": {
        "ja": "キーワード（すべての文字列項目から探す）",
        "en": "Text (searched in every text field)",
    },
    "filter.fields": {"ja": "項目の値で絞り込む（完全一致）", "en": "Filter by field value (exact match)"},
    "filter.limit": {"ja": "1ページの件数", "en": "Records per page"},
    "filter.submit": {"ja": "絞り込む", "en": "Apply"},
    "filter.clear": {"ja": "条件を消す", "en": "Clear filters"},
    "paging": {"ja": "ページ送り", "en": "Pages"},
    "paging.previous": {"ja": "前のページ", "en": "Previous page"},
    "paging.next": {"ja": "次のページ", "en": "Next page"},
    "paging.first": {"ja": "最初のページ", "en": "First page"},
    "error.title": {"ja": "条件に誤りがあります", "en": "There is a problem with the filters"},
    "error.parameter": {
        "ja": "パラメータ「{parameter}」が正しくありません。{hint}",
        "en": "Parameter “{parameter}” is not valid. {hint}",
    },
    "error.detail": {"ja": "詳細（API の応答と同じ）：{detail}", "en": "Details (as the API says): {detail}"},
    "downloads": {"ja": "ダウンロード", "en": "Downloads"},
    "downloads.note": {
        "ja": "現在の絞り込み条件を満たすすべてのレコードをダウンロードします。",
        "en": "Every record matching the current filters is downloaded.",
    },
    "download.csv_bom": {"ja": "CSV（Excel 向け、BOM 付き）", "en": "CSV for Excel (with BOM)"},
    "download.csv": {"ja": "CSV（UTF-8）", "en": "CSV (UTF-8)"},
    "download.geojson": {"ja": "GeoJSON（地図）", "en": "GeoJSON (map)"},
    "download.ndjson": {"ja": "NDJSON（1行1レコード）", "en": "NDJSON (one record a line)"},
    "download.json": {"ja": "JSON", "en": "JSON"},
    "download.parquet": {"ja": "Parquet（分析ツール向け）", "en": "Parquet (for analysis tools)"},
    "api": {"ja": "API で使う", "en": "Use it from code"},
    "api.note": {
        "ja": "プレビューと同じ条件でレコード API を呼び出す例です。",
        "en": "These call the records API with the same query as the preview.",
    },
    "api.note_key": {
        "ja": "このデータセットの閲覧には API キーが必要です。環境変数 CITYOS_API_KEY に設定してください。",
        "en": "Reading this dataset needs an API key: put it in the CITYOS_API_KEY environment variable.",
    },
    "api.curl": {"ja": "curl", "en": "curl"},
    "api.python": {"ja": "Python（標準ライブラリ）", "en": "Python (standard library)"},
    "links": {"ja": "ほかの形式・標準 API", "en": "Standard interfaces"},
    "link.ckan": {"ja": "CKAN API（package_show）", "en": "CKAN API (package_show)"},
    "link.dcat_ttl": {"ja": "DCAT-AP メタデータ（Turtle）", "en": "DCAT-AP metadata (Turtle)"},
    "link.dcat_jsonld": {"ja": "DCAT-AP メタデータ（JSON-LD）", "en": "DCAT-AP metadata (JSON-LD)"},
    "link.ogc": {"ja": "OGC API - Features のコレクション", "en": "OGC API - Features collection"},
    "link.api": {"ja": "データセット API（JSON）", "en": "Dataset API (JSON)"},
    "map": {"ja": "地図", "en": "Map"},
    "usage": {"ja": "利用状況", "en": "Usage"},
    "usage.summary": {
        "ja": "過去{days}日間の API リクエスト数：合計 {total} 件、1日の最大 {peak} 件（{peak_day}）",
        "en": "API requests in the last {days} days: {total} in all, at most {peak} a day ({peak_day})",
    },
    "usage.summary_none": {
        "ja": "過去{days}日間の API リクエストはありません。",
        "en": "No API requests in the last {days} days.",
    },
    "usage.table": {"ja": "日ごとのリクエスト数", "en": "Requests per day"},
    "usage.day": {"ja": "日付", "en": "Day"},
    "usage.requests": {"ja": "リクエスト数", "en": "Requests"},
}


# What to do about a refused parameter, by parameter; a filter on a field gets the last one.
_HINTS: Final[dict[str, dict[Lang, str]]] = {
    "limit": {
        "ja": "1 から {max} までの整数を指定してください。多くのレコードはダウンロードか API をご利用ください。",
        "en": "Give a whole number from 1 to {max}; download the data or use the API for more records.",
    },
    "offset": {"ja": "0 以上の整数を指定してください。", "en": "Give a whole number, 0 or more."},
    "q": {"ja": "1〜200 文字のキーワードを指定してください。", "en": "Give 1 to 200 characters of text."},
    "cursor": {
        "ja": "ページ送りのリンクをそのままお使いください（並べ替えや offset とは併用できません）。",
        "en": "Follow the page links as given (a cursor does not combine with sort or offset).",
    },
    "sort": {
        "ja": "項目の定義にある項目名を、カンマ区切りで指定してください（降順は先頭に -）。",
        "en": "Give field names from the schema, comma-separated (a leading - sorts descending).",
    },
    "fields": {
        "ja": "項目の定義にある項目名を、カンマ区切りで指定してください。",
        "en": "Give field names from the schema, comma-separated.",
    },
    "bbox": {
        "ja": "最小経度,最小緯度,最大経度,最大緯度 の順に数値を指定してください（位置情報のあるデータのみ）。",
        "en": "Give minLon,minLat,maxLon,maxLat as numbers (located datasets only).",
    },
    "near": {
        "ja": "経度,緯度 を数値で指定してください（位置情報のあるデータのみ）。",
        "en": "Give lon,lat as numbers (located datasets only).",
    },
    "distance": {
        "ja": "near と一緒に、0 より大きい距離（メートル）を指定してください。",
        "en": "Give a distance in metres above 0, together with near.",
    },
    "request": {"ja": "条件の数を減らしてください。", "en": "Use fewer parameters."},
    "": {
        "ja": "項目の定義にある項目名と、その型に合う値を指定してください。",
        "en": "Use a field from the schema and a value of its type.",
    },
}


def problem_hint(parameter: str, lang: Lang) -> str:
    """What the reader can do about a refused ``parameter``, in the page's language."""
    hint = _HINTS.get(parameter, _HINTS[""])[lang]
    return hint.format(max=PREVIEW_MAX_LIMIT) if parameter == "limit" else hint


def word(key: str, lang: Lang, **values: object) -> str:
    """The page's text ``key`` in ``lang``, with ``values`` put into its placeholders."""
    text = WORDS[key][lang]
    return text.format(**values) if values else text


def other_language(pair: object, lang: Lang, fallback: str = "") -> str:
    """The text of a ``{"ja": ..., "en": ...}`` pair in ``lang``, else the other language's."""
    if not isinstance(pair, Mapping):
        return fallback
    other: Lang = "en" if lang == "ja" else "ja"
    for choice in (lang, other):
        value = pair.get(choice)
        if isinstance(value, str) and value.strip():
            return value
    return fallback


# --- age of the last change -------------------------------------------------------------------

_AGE_UNITS: Final[tuple[tuple[int, str, str], ...]] = (
    (365 * 86_400, "年", "year"),
    (30 * 86_400, "か月", "month"),
    (86_400, "日", "day"),
    (3_600, "時間", "hour"),
    (60, "分", "minute"),
)


def age_text(moment: datetime, now: datetime, lang: Lang) -> str:
    """How long ago ``moment`` was, in whole units (「3時間前」, "3 hours ago"); a moment in the
    future (clocks a little apart) reads as now."""
    seconds = int((now - moment).total_seconds())
    for size, ja, en in _AGE_UNITS:
        if seconds >= size:
            count = seconds // size
            if lang == "ja":
                return f"{count}{ja}前"
            return f"{count} {en}{'' if count == 1 else 's'} ago"
    return "たった今" if lang == "ja" else "just now"


def local_time_text(moment: datetime, lang: Lang) -> str:
    """A moment as the city reads it (JST)."""
    local = moment.astimezone(JST)
    if lang == "ja":
        return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}（日本時間）"
    return f"{local:%Y-%m-%d %H:%M} JST"


# --- metadata words ---------------------------------------------------------------------------

FREQUENCIES: Final[dict[str, dict[Lang, str]]] = {
    "continuous": {"ja": "随時", "en": "Continuously"},
    "realtime": {"ja": "リアルタイム", "en": "Real time"},
    "hourly": {"ja": "毎時", "en": "Hourly"},
    "daily": {"ja": "毎日", "en": "Daily"},
    "weekly": {"ja": "毎週", "en": "Weekly"},
    "monthly": {"ja": "毎月", "en": "Monthly"},
    "quarterly": {"ja": "四半期ごと", "en": "Quarterly"},
    "annual": {"ja": "毎年", "en": "Annually"},
    "irregular": {"ja": "不定期", "en": "Irregularly"},
    "never": {"ja": "更新しない", "en": "Never"},
}


def frequency_text(value: object, lang: Lang) -> str:
    if not isinstance(value, str) or not value:
        return "—"
    known = FREQUENCIES.get(value)
    return known[lang] if known is not None else value


_STAR_NAMES: Final[dict[str, dict[Lang, str]]] = {
    "open licence": {"ja": "オープンなライセンス", "en": "Open licence"},
    "machine-readable": {"ja": "機械判読可能", "en": "Machine-readable"},
    "open format": {"ja": "オープンなフォーマット", "en": "Open format"},
    "URIs and RDF": {"ja": "URI と RDF", "en": "URIs and RDF"},
    "linked data": {"ja": "リンクトデータ", "en": "Linked data"},
}
# Japanese reasons by (criterion, met); the English ones come with the rating itself.
_STAR_REASONS_JA: Final[dict[tuple[str, bool], str]] = {
    ("open licence", True): "オープンなライセンス（{license}）でウェブに公開しています。",
    ("open licence", False): "ライセンス {license} は認められたオープンなライセンスではありません。",
    (
        "machine-readable",
        True,
    ): "レコードを構造化データ（JSON、CSV）で提供しています（画像や文書ではありません）。",
    (
        "open format",
        True,
    ): "提供する形式（CSV、JSON、GeoJSON、NDJSON）はすべて特定の製品に依存しないオープンな形式です。",
    (
        "URIs and RDF",
        True,
    ): "各レコードに固有の URI があり（キー：{record_key}）、メタデータを RDF（DCAT-AP）で公開しています。",
    ("URIs and RDF", False): "レコードに安定したキーか公開スキーマがないため、URI を付けられません。",
    ("linked data", True): "関連するデータへのリンクを宣言しています。",
    ("linked data", False): "ほかのデータへのリンクはまだ宣言されていません。",
}
_QUALITY_FIELDS: Final[dict[str, dict[Lang, str]]] = {
    "title (ja)": {"ja": "タイトル（日本語）", "en": "Title (Japanese)"},
    "title (en)": {"ja": "タイトル（英語）", "en": "Title (English)"},
    "description (ja)": {"ja": "説明（日本語）", "en": "Description (Japanese)"},
    "description (en)": {"ja": "説明（英語）", "en": "Description (English)"},
    "publisher": {"ja": "公開者", "en": "Publisher"},
    "contact point": {"ja": "問い合わせ先", "en": "Contact point"},
    "licence": {"ja": "ライセンス", "en": "Licence"},
    "keywords": {"ja": "キーワード", "en": "Keywords"},
    "themes": {"ja": "分類（テーマ）", "en": "Themes"},
    "update frequency": {"ja": "更新頻度", "en": "Update frequency"},
    "conforms to (schema)": {"ja": "準拠するスキーマ", "en": "Conforms to (schema)"},
    "spatial coverage": {"ja": "空間的範囲（位置情報）", "en": "Spatial coverage"},
    "temporal coverage": {"ja": "時間的範囲", "en": "Temporal coverage"},
    "modified date": {"ja": "更新日", "en": "Modified date"},
    "distributions": {"ja": "配布形式", "en": "Distributions"},
}


@dataclass(frozen=True, slots=True)
class StarView:
    level: int
    name: str
    met: bool
    reason: str


@dataclass(frozen=True, slots=True)
class QualityView:
    stars: int
    criteria: tuple[StarView, ...]
    score: int
    missing: tuple[str, ...]


def quality_view(quality: Mapping[str, Any], lang: Lang, *, license_id: str, record_key: str) -> QualityView:
    """The rating and the metadata score of the dataset API's body (``five_star``,
    ``metadata_quality``) in the page's language, each star with its reason."""
    rating, score = quality["five_star"], quality["metadata_quality"]
    criteria = []
    for star in rating["criteria"]:
        criterion, met = str(star["criterion"]), bool(star["met"])
        name = _STAR_NAMES.get(criterion, {}).get(lang, criterion)
        reason = str(star["reason"])
        if lang == "ja" and (criterion, met) in _STAR_REASONS_JA:
            template = _STAR_REASONS_JA[(criterion, met)]
            reason = template.format(license=license_id or "（なし）", record_key=record_key)
        criteria.append(StarView(int(star["level"]), name, met, reason))
    missing = tuple(_QUALITY_FIELDS.get(name, {}).get(lang, name) for name in score["missing"])
    return QualityView(int(rating["stars"]), tuple(criteria), int(score["score"]), missing)


# --- schema as a table ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaRow:
    name: str  # dotted, ``[]`` for the items of an array: ``施設.住所``, ``内訳[].金額``
    pointer: str  # RFC 6901 pointer into a record; ``-`` stands for any item of an array
    title: str
    type: str
    required: bool
    description: str
    depth: int


def _escape_pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _resolve(node: Any, root: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
    """A property's schema, following local ``$ref``s (``#/$defs/...``) a bounded number of times."""
    seen = 0
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and seen < MAX_SCHEMA_DEPTH:
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, Mapping) else None
        if not isinstance(target, Mapping):
            break
        # Keywords beside the $ref (title, description) describe this use of the definition.
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    return node if isinstance(node, Mapping) else {}


def type_text(node: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    """``string (date)``, ``integer | null``, ``array of object``: the declared type as read."""
    declared = node.get("type")
    names = [str(t) for t in declared] if isinstance(declared, list) else [str(declared)] if declared else []
    if not names and "enum" in node:
        names = ["enum"]
    if not names and "const" in node:
        names = ["const"]
    text = " | ".join(names) if names else "any"
    if isinstance(node.get("format"), str):
        text += f" ({node['format']})"
    if "array" in names:
        items = _resolve(node.get("items"), root, 0)
        if items:
            text += " of " + type_text(items, root)
    return text


def schema_rows(document: Mapping[str, Any] | None, lang: Lang) -> tuple[tuple[SchemaRow, ...], bool]:
    """The schema's properties as table rows, nested ones flattened under their parent, and whether
    the walk stopped at ``MAX_SCHEMA_ROWS``. On the English page a field's English name (``x-en``)
    is its title when the schema gives one."""
    rows: list[SchemaRow] = []
    if not isinstance(document, Mapping):
        return (), False

    def walk(node: Mapping[str, Any], name: str, pointer: str, depth: int) -> bool:
        properties = node.get("properties")
        if not isinstance(properties, Mapping) or depth >= MAX_SCHEMA_DEPTH:
            return True
        required = node.get("required")
        required_names = set(required) if isinstance(required, list) else set()
        for key, raw in properties.items():
            if len(rows) >= MAX_SCHEMA_ROWS:
                return False
            prop = _resolve(raw, document, depth)
            field_name = f"{name}.{key}" if name else str(key)
            field_pointer = f"{pointer}/{_escape_pointer(str(key))}"
            english = prop.get("x-en")
            title = english if lang == "en" and isinstance(english, str) and english else prop.get("title")
            rows.append(
                SchemaRow(
                    name=field_name,
                    pointer=field_pointer,
                    title=str(title) if isinstance(title, str) else "",
                    type=type_text(prop, document),
                    required=key in required_names,
                    description=str(prop.get("description") or ""),
                    depth=depth,
                )
            )
            if not walk(prop, field_name, field_pointer, depth + 1):
                return False
            items = _resolve(prop.get("items"), document, depth)
            if items and not walk(items, f"{field_name}[]", f"{field_pointer}/-", depth + 1):
                return False
        return True

    complete = walk(document, "", "", 0)
    return tuple(rows), not complete


def filterable_fields(document: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Top-level properties an equality filter applies to: those of a scalar type."""
    properties = document.get("properties") if isinstance(document, Mapping) else None
    if not isinstance(properties, Mapping):
        return ()
    scalar = {"string", "integer", "number", "boolean"}
    names = []
    for name, raw in properties.items():
        prop = _resolve(raw, document or {}, 0)
        declared = prop.get("type")
        types = set(declared) if isinstance(declared, list) else {declared}
        if types & scalar:
            names.append(str(name))
    return tuple(names)


# --- query strings: the preview's, and the links that carry it -------------------------------

Params = Sequence[tuple[str, str]]


def preview_params(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The records query the page shows, from its query string.

    A search form sends every input, empty ones too; an empty input means "no condition" here (the
    records API would read ``名称=`` as "equals the empty text"). The representation parameters are
    the page's to decide (HTML), so they are left out too.
    """
    return [(k, v) for k, v in items if v.strip() and k not in REPRESENTATION_PARAMETERS]


def export_params(params: Params) -> list[tuple[str, str]]:
    """The filters of ``params`` that an export takes (an export is every matching record)."""
    return [(k, v) for k, v in params if k not in PAGING_PARAMETERS]


def query_string(params: Params) -> str:
    # The records API's own encoding: %20 for spaces, UTF-8 percent-escapes for Japanese names.
    return urlencode(list(params), quote_via=quote)


def with_query(path: str, params: Params) -> str:
    query = query_string(params)
    return f"{path}?{query}" if query else path


def replaced(params: Params, **changes: str | None) -> list[tuple[str, str]]:
    """``params`` with each named parameter set (appended if new) or removed (None)."""
    kept = [(k, v) for k, v in params if k not in changes]
    return kept + [(k, v) for k, v in changes.items() if v is not None]


@dataclass(frozen=True, slots=True)
class Download:
    key: str
    href: str


def downloads(export_path: str, params: Params, *, located: bool) -> tuple[Download, ...]:
    """Links to the export of every record the current filters match, one per format."""
    filters = export_params(params)
    formats: list[tuple[str, list[tuple[str, str]]]] = [
        ("download.csv_bom", [("format", "csv"), ("bom", "true")]),
        ("download.csv", [("format", "csv")]),
    ]
    if located:
        formats.append(("download.geojson", [("format", "geojson")]))
    formats += [
        ("download.ndjson", [("format", "ndjson")]),
        ("download.json", [("format", "json")]),
        ("download.parquet", [("format", "parquet")]),
    ]
    return tuple(Download(key, with_query(export_path, [*filters, *extra])) for key, extra in formats)


# --- copy-paste snippets ----------------------------------------------------------------------

_KEY_VARIABLE = "CITYOS_API_KEY"


def curl_snippet(endpoint: str, params: Params, *, needs_key: bool) -> str:
    """A shell command fetching the preview's page from the records API (URL percent-encoded, so
    it works in any terminal whatever its encoding)."""
    parts = ["curl", "--fail", "--silent", "--show-error"]
    if needs_key:
        # Double quotes: the shell expands the variable, so the key never sits in the snippet.
        parts.append(f'-H "Authorization: Bearer ${_KEY_VARIABLE}"')
    parts.append(shlex.quote(with_query(endpoint, params)))
    return " \\\n  ".join([" ".join(parts[:-1]), parts[-1]]) if needs_key else " ".join(parts)


def python_snippet(endpoint: str, params: Params, *, needs_key: bool) -> str:
    """A Python program (standard library only) fetching the same page and printing its records."""
    pairs = ",\n".join(f"    ({key!r}, {value!r})" for key, value in params)
    lines = [
        "import json",
        *(["import os"] if needs_key else []),
        "from urllib.parse import quote, urlencode",
        "from urllib.request import Request, urlopen",
        "",
        "params = [\n" + pairs + ",\n]" if params else "params: list[tuple[str, str]] = []",
        f"url = {endpoint!r} + '?' + urlencode(params, quote_via=quote)",
    ]
    if needs_key:
        lines.append(f"headers = {{'Authorization': 'Bearer ' + os.environ[{_KEY_VARIABLE!r}]}}")
    else:
        lines.append("headers: dict[str, str] = {}")
    lines += [
        "with urlopen(Request(url, headers=headers)) as response:",
        "    page = json.load(response)",
        "print(page['total'], 'records')",
        "for record in page['records']:",
        "    print(record)",
    ]
    return "\n".join(lines)


# --- preview table cells ----------------------------------------------------------------------


# Separators of the preview's cells and rows while its text is escaped in one pass: control
# characters that escaping leaves alone. Text holding either is escaped cell by cell instead.
_CELL, _ROW = "\x00", "\x01"


def preview_rows_html(rows: Sequence[Sequence[str]]) -> Markup:
    """The preview table's body rows, each cell's text escaped, one row a line: the markup the
    page's template would write cell by cell, at a fraction of the cost (a hundred rows of dozens
    of fields are thousands of cells)."""
    if rows and all(rows):
        text = _ROW.join([_CELL.join(row) for row in rows])
        # A separator inside a cell's own text would show up as one too many.
        if text.count(_ROW) == len(rows) - 1 and text.count(_CELL) == sum(len(row) - 1 for row in rows):
            inner = str(escape(text)).replace(_CELL, "</td><td>").replace(_ROW, "</td></tr>\n    <tr><td>")
            return Markup(f"    <tr><td>{inner}</td></tr>\n")
    return Markup(
        "".join(
            f"    <tr><td>{'</td><td>'.join(map(escape, row))}</td></tr>\n" if row else "    <tr></tr>\n"
            for row in rows
        )
    )


def preview_cells(
    documents: Iterable[Mapping[str, Any]], columns: Sequence[str]
) -> tuple[tuple[str, ...], ...]:
    """The preview's rows of ``documents`` as ``cell_text``s, in ``columns``' order."""
    return tuple(
        tuple([value if type(value) is str else cell_text(value) for value in map(document.get, columns)])
        for document in documents
    )


# --- usage sparkline --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    requests: int


def daily_requests(
    hours: Iterable[tuple[datetime, int]], *, today: date, days: int = USAGE_DAYS
) -> tuple[DayCount, ...]:
    """Requests per day (JST) for the ``days`` days ending ``today``, zero for a day without any;
    ``hours`` are the usage counters' (hour, requests), hours outside the window ignored."""
    first = today - timedelta(days=days - 1)
    totals = {first + timedelta(days=i): 0 for i in range(days)}
    for hour, requests in hours:
        local = hour.astimezone(JST).date() if hour.tzinfo is not None else hour.replace(tzinfo=JST).date()
        if local in totals:
            totals[local] += int(requests)
    return tuple(DayCount(day, count) for day, count in totals.items())


def window_start(today: date, days: int = USAGE_DAYS) -> datetime:
    """The first instant of the usage window: midnight JST of its first day."""
    first = today - timedelta(days=days - 1)
    return datetime(first.year, first.month, first.day, tzinfo=JST)


@dataclass(frozen=True, slots=True)
class Sparkline:
    width: int
    height: int
    points: tuple[tuple[float, float], ...]
    total: int
    peak: int
    peak_day: date | None
    days: tuple[DayCount, ...]

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:g},{y:g}" for x, y in self.points)

    @property
    def area(self) -> str:
        """The closed outline under the line (a filled shape reads better than a thin line)."""
        if not self.points:
            return ""
        bottom = self.height - SPARK_PAD
        first, last = self.points[0][0], self.points[-1][0]
        return f"{first:g},{bottom:g} {self.polyline} {last:g},{bottom:g}"


SPARK_PAD: Final = 2


def sparkline(days: Sequence[DayCount], *, width: int = 240, height: int = 48) -> Sparkline:
    """Geometry of the usage line: one point per day left to right, the busiest day touching the
    top, a day without requests on the bottom (a flat bottom line when there were none at all)."""
    peak = max((d.requests for d in days), default=0)
    inner_w, inner_h = width - 2 * SPARK_PAD, height - 2 * SPARK_PAD
    step = inner_w / (len(days) - 1) if len(days) > 1 else 0.0
    points = tuple(
        (
            round(SPARK_PAD + i * step, 1),
            round(SPARK_PAD + inner_h - (d.requests / peak * inner_h if peak else 0.0), 1),
        )
        for i, d in enumerate(days)
    )
    peak_day = next((d.day for d in days if d.requests == peak), None) if peak else None
    total = sum(d.requests for d in days)
    return Sparkline(width, height, points, total, peak, peak_day, tuple(days))


def day_text(day: date, lang: Lang) -> str:
    return f"{day.month}月{day.day}日" if lang == "ja" else f"{day:%d %b}"
