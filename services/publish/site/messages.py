"""The site's own words in Japanese and English, one entry per key: ``MESSAGES[key][lang]``.

Kept apart from the templates so that a page in either language is a lookup, and a test can check
that every key has both texts.
"""

from __future__ import annotations

from typing import Final, Literal

Lang = Literal["ja", "en"]
LANGS: Final[tuple[Lang, ...]] = ("ja", "en")

MESSAGES: Final[dict[str, dict[Lang, str]]] = {
    # frame
    "site.name": {"ja": "CityOS オープンデータカタログ", "en": "CityOS Open Data Catalog"},
    "site.skip": {"ja": "本文へ移動", "en": "Skip to main content"},
    "nav.label": {"ja": "サイト内の移動", "en": "Site navigation"},
    "nav.home": {"ja": "ホーム", "en": "Home"},
    "nav.search": {"ja": "データセット検索", "en": "Search datasets"},
    "nav.map": {"ja": "地図", "en": "Map"},
    "nav.kpi": {"ja": "DX推進計画の KPI", "en": "DX plan KPIs"},
    "nav.ogc": {"ja": "OGC API", "en": "OGC API"},
    "nav.docs": {"ja": "API ドキュメント", "en": "API docs"},
    "lang.other": {"ja": "English", "en": "日本語"},
    "lang.other_label": {"ja": "English version of this page", "en": "このページの日本語版"},
    "login.link": {"ja": "庁内ログイン", "en": "Staff login"},
    "login.state": {"ja": "ログイン中", "en": "Logged in as"},
    "logout.button": {"ja": "ログアウト", "en": "Log out"},
    "footer.licence": {
        "ja": "データは、個別に記載のない限り クリエイティブ・コモンズ 表示 4.0 国際 (CC BY 4.0) で提供しています。",
        "en": "Data is provided under Creative Commons Attribution 4.0 International (CC BY 4.0) "
        "unless a dataset says otherwise.",
    },
    "footer.wards": {
        "ja": "区の境界：「国土数値情報（行政区域データ）」（国土交通省）を加工して作成",
        "en": "Ward boundaries: 「国土数値情報（行政区域データ）」（国土交通省）を加工して作成 "
        "(processed from the National Land Numerical Information, Administrative Areas, MLIT Japan)",
    },
    "internal.badge": {"ja": "庁内限定", "en": "Internal"},
    # home
    "home.title": {"ja": "オープンデータカタログ", "en": "Open data catalog"},
    "home.lead": {
        "ja": "市の各部局が公開しているデータを検索し、CSV・JSON・GeoJSON で利用できます。",
        "en": "Search the data the city's departments publish, and use it as CSV, JSON or GeoJSON.",
    },
    "home.count": {"ja": "公開中のデータセット", "en": "Datasets available"},
    "home.newest": {"ja": "新着・更新されたデータセット", "en": "Newest and recently updated"},
    "home.popular": {"ja": "よく使われているデータセット", "en": "Most used datasets"},
    "home.departments": {"ja": "部局から探す", "en": "Browse by department"},
    "home.none": {"ja": "まだデータセットがありません。", "en": "No datasets yet."},
    "home.uses": {"ja": "利用回数", "en": "uses"},
    "home.updated": {"ja": "更新", "en": "Updated"},
    "home.not_updated": {"ja": "未更新", "en": "No records yet"},
    # search
    "search.title": {"ja": "データセット検索", "en": "Search datasets"},
    "search.label": {"ja": "キーワード", "en": "Keywords"},
    "search.placeholder": {"ja": "例：AED、避難所", "en": "e.g. AED, shelter"},
    "search.submit": {"ja": "検索", "en": "Search"},
    "search.results": {"ja": "件のデータセット", "en": "datasets"},
    "search.result_one": {"ja": "件のデータセット", "en": "dataset"},
    "search.none": {
        "ja": "条件に合うデータセットはありません。キーワードや絞り込みを減らしてください。",
        "en": "No dataset matches. Try fewer words or remove a filter.",
    },
    "search.facets": {"ja": "絞り込み", "en": "Filter"},
    "search.selected": {"ja": "選択中の条件", "en": "Selected filters"},
    "search.remove": {"ja": "解除", "en": "remove"},
    "search.clear": {"ja": "すべて解除", "en": "Clear all"},
    "search.page": {"ja": "ページ", "en": "Page"},
    "search.pages": {"ja": "ページ送り", "en": "Pages"},
    "search.bad": {"ja": "検索条件が正しくありません", "en": "The search is not valid"},
    "search.formats": {"ja": "形式", "en": "Formats"},
    "search.department": {"ja": "部局", "en": "Department"},
    "search.stars": {"ja": "5つ星", "en": "5-star"},
    "facet.department": {"ja": "部局", "en": "Department"},
    "facet.keyword": {"ja": "キーワード", "en": "Keyword"},
    "facet.format": {"ja": "形式", "en": "Format"},
    "facet.stars": {"ja": "5つ星オープンデータ", "en": "5-star open data"},
    "facet.license": {"ja": "ライセンス", "en": "Licence"},
    "stars.suffix": {"ja": "つ星", "en": " stars"},
    # login
    "login.title": {"ja": "庁内ログイン", "en": "Staff login"},
    "login.lead": {
        "ja": "部局の認証情報（cos_ で始まる文字列）でログインすると、閲覧を許可された庁内限定のデータセットも表示されます。",
        "en": "Log in with your department's credential (it starts with cos_) to also see the internal "
        "datasets your department may read.",
    },
    "login.key": {"ja": "部局の認証情報", "en": "Department credential"},
    "login.submit": {"ja": "ログイン", "en": "Log in"},
    "login.bad": {
        "ja": "認証情報が正しくないか、失効または期限切れです。入力内容を確認してください。",
        "en": "The credential is wrong, revoked or expired. Check what you entered.",
    },
    "login.not_department": {
        "ja": "この認証情報は部局のものではありません。部局の認証情報を入力してください。",
        "en": "This credential does not belong to a department. Enter a department credential.",
    },
    "login.cross_site": {
        "ja": "このサイト以外から送信されたため、ログインできませんでした。このページから再度お試しください。",
        "en": "The form was sent from another site, so you were not logged in. Try again from this page.",
    },
    "login.too_many": {
        "ja": "試行回数が多すぎます。しばらく待ってから再度お試しください。",
        "en": "Too many attempts. Wait a while and try again.",
    },
    "login.error": {"ja": "エラー", "en": "Error"},
    # errors
    "error.title": {"ja": "エラー", "en": "Error"},
    "error.back": {"ja": "検索ページに戻る", "en": "Back to search"},
}


def message(key: str, lang: Lang) -> str:
    """The text of ``key`` in ``lang``; an unknown key is a bug in a template, so it raises."""
    return MESSAGES[key][lang]
