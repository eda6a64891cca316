"""Place names for synthetic resident records and the address hierarchies: Kitakyushu's 7 wards
(real names and 全国地方公共団体コード), plausible 町 names per ward, Japan's prefectures by region.

The 町 lists are written for this project from general knowledge of the city; they only need to be
plausible (synthetic data never describes real people), and the 丁目 counts are illustrative.
"""

from __future__ import annotations

from dataclasses import dataclass

HOME_PREFECTURE = "福岡県"
ABROAD = "国外"


@dataclass(frozen=True)
class Ward:
    name: str
    code: str  # 6-digit 全国地方公共団体コード with check digit
    population: int  # rough resident count: the share of moves drawn in this ward
    towns: tuple[tuple[str, int], ...]  # (町 name, number of 丁目; 0 = no 丁目)


WARDS: tuple[Ward, ...] = (
    Ward("門司区", "401013", 92_000, (
        ("港町", 0), ("西海岸", 3), ("清滝", 5), ("錦町", 0), ("栄町", 0), ("老松町", 0),
        ("大里本町", 3), ("大里戸ノ上", 4), ("柳町", 4), ("下馬寄", 0), ("上馬寄", 3),
        ("東新町", 2), ("白野江", 3), ("田野浦", 2), ("吉志", 7), ("小森江", 3), ("恒見町", 0),
    )),
    Ward("若松区", "401030", 80_000, (
        ("本町", 3), ("浜町", 3), ("白山", 2), ("東二島", 5), ("二島", 5), ("高須東", 4),
        ("高須南", 3), ("高須北", 3), ("青葉台南", 2), ("畠田", 4), ("小石本村町", 0),
        ("久岐の浜", 0), ("花野路", 4), ("宮丸", 2), ("藤ノ木", 2), ("修多羅", 3),
    )),
    Ward("戸畑区", "401056", 56_000, (
        ("中本町", 0), ("汐井町", 0), ("天神", 2), ("境川", 2), ("新池", 3), ("浅生", 3),
        ("正津町", 0), ("菅原", 4), ("沢見", 2), ("牧山", 5), ("中原東", 4), ("中原西", 3),
        ("一枝", 4), ("東鞘ヶ谷町", 0),
    )),
    Ward("小倉北区", "401064", 180_000, (
        ("魚町", 4), ("京町", 4), ("紺屋町", 0), ("船場町", 0), ("米町", 2), ("鍛冶町", 2),
        ("堺町", 2), ("大手町", 0), ("城内", 0), ("室町", 3), ("片野", 5), ("片野新町", 3),
        ("黒住町", 0), ("熊本", 4), ("中井", 5), ("清水", 5), ("到津", 4), ("上到津", 4),
        ("赤坂", 5), ("宇佐町", 2), ("三郎丸", 3), ("金田", 3), ("日明", 4), ("井堀", 5),
        ("篠崎", 5), ("霧ヶ丘", 3), ("若富士町", 0),
    )),
    Ward("小倉南区", "401072", 208_000, (
        ("曽根", 0), ("朽網東", 6), ("葛原", 5), ("守恒", 6), ("徳力", 6), ("徳吉東", 3),
        ("湯川", 5), ("北方", 5), ("南方", 5), ("志井", 6), ("下曽根", 4), ("上葛原", 2),
        ("長野", 3), ("企救丘", 5), ("横代東町", 3), ("沼本町", 4), ("蜷田若園", 4),
        ("若園", 5), ("城野", 4), ("中曽根", 4),
    )),
    Ward("八幡東区", "401081", 64_000, (
        ("中央", 3), ("西本町", 4), ("東本町", 4), ("荒生田", 3), ("大蔵", 3), ("枝光", 5),
        ("春の町", 5), ("尾倉", 3), ("祇園", 3), ("東田", 2), ("平野", 3), ("清田", 4),
        ("高見", 5), ("山王", 3), ("景勝町", 0),
    )),
    Ward("八幡西区", "401099", 250_000, (
        ("黒崎", 6), ("熊手", 3), ("藤田", 4), ("陣原", 5), ("則松", 7), ("本城", 5),
        ("折尾", 5), ("東折尾町", 0), ("三ヶ森", 4), ("永犬丸", 5), ("穴生", 4), ("鷹の巣", 3),
        ("引野", 3), ("萩原", 3), ("木屋瀬", 5), ("光貞台", 3), ("八枝", 5), ("青山", 3),
        ("竹末", 2), ("浅川", 3), ("大浦", 3), ("御開", 5),
    )),
)  # fmt: skip

KANJI_DIGITS = ("〇", "一", "二", "三", "四", "五", "六", "七", "八", "九")


def chome_label(number: int) -> str:
    """'三丁目': kanji numerals, as 町丁目 names are written (and never mistaken for a 番地)."""
    return f"{KANJI_DIGITS[number]}丁目"


def town_blocks(ward: Ward) -> list[str]:
    """Every 町丁目 of a ward: '魚町一丁目' …, or the bare 町 name when it has no 丁目."""
    blocks: list[str] = []
    for town, chome in ward.towns:
        blocks.extend([town] if chome == 0 else [town + chome_label(n) for n in range(1, chome + 1)])
    return blocks


REGIONS: dict[str, tuple[str, ...]] = {
    "北海道": ("北海道",),
    "東北": ("青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県"),
    "関東": ("茨城県", "栃木県", "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県"),
    "中部": ("新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県", "岐阜県", "静岡県", "愛知県"),
    "近畿": ("三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県"),
    "中国": ("鳥取県", "島根県", "岡山県", "広島県", "山口県"),
    "四国": ("徳島県", "香川県", "愛媛県", "高知県"),
    "九州・沖縄": ("福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県"),
}

REGION_OF: dict[str, str] = {pref: region for region, prefs in REGIONS.items() for pref in prefs}
PREFECTURES: tuple[str, ...] = tuple(REGION_OF)
