"""English and Japanese sentences of every compatibility rule and lint rule.

Templates use ``{w}`` / ``{r}`` for the writer's and reader's schema labels (``v2``, ``v3``), ``{name}``
for a property name, ``{keyword}`` for a JSON Schema keyword, ``{wv}`` / ``{rv}`` for the writer's and
reader's values. Rule names follow Confluent Schema Registry's JSON Schema difference types where one
exists, so operators who know that registry recognise them.
"""

from __future__ import annotations

from typing import Final

# rule -> (English, Japanese)
COMPATIBILITY: Final[dict[str, tuple[str, str]]] = {
    "SCHEMA_REJECTS_ALL": (
        "The reader's schema ({r}) accepts nothing here, while the writer's ({w}) accepts values.",
        "読み取り側のスキーマ（{r}）はここで何も受け付けませんが、書き込み側（{w}）は値を許します。",
    ),
    "TYPE_NARROWED": (
        "The reader's schema ({r}) accepts the types {rv}, the writer's ({w}) also allows {wv}: "
        "such values written with {w} would be rejected.",
        "読み取り側（{r}）が受け付ける型は {rv} ですが、書き込み側（{w}）は {wv} も許します。"
        "{w} で書かれたその型の値は拒否されます。",
    ),
    "TYPE_CHANGED": (
        "The type changed from {wv} ({w}) to {rv} ({r}): no value written with {w} is accepted.",
        "型が {wv}（{w}）から {rv}（{r}）に変わりました。{w} で書かれた値はどれも受け付けられません。",
    ),
    "ENUM_ADDED": (
        "The reader's schema ({r}) limits the value to {rv}; the writer's ({w}) had no such list.",
        "読み取り側（{r}）は値を {rv} に限りますが、書き込み側（{w}）にはその制限がありません。",
    ),
    "ENUM_NARROWED": (
        "The values {wv} allowed by {w} are not in the reader's list ({r}).",
        "{w} で許される値 {wv} が読み取り側（{r}）の列挙にありません。",
    ),
    "KEYWORD_ADDED": (
        "The reader's schema ({r}) adds '{keyword}': {rv}; values written with {w} need not satisfy it.",
        "読み取り側（{r}）に「{keyword}」: {rv} が加わりました。{w} で書かれた値がこれを満たすとは限りません。",
    ),
    "KEYWORD_NARROWED": (
        "'{keyword}' tightened from {wv} ({w}) to {rv} ({r}): some values written with {w} are rejected.",
        "「{keyword}」が {wv}（{w}）から {rv}（{r}）に厳しくなりました。{w} で書かれた値の一部が拒否されます。",
    ),
    "KEYWORD_CHANGED": (
        "'{keyword}' changed from {wv} ({w}) to {rv} ({r}): values written with {w} may be rejected.",
        "「{keyword}」が {wv}（{w}）から {rv}（{r}）に変わりました。{w} で書かれた値が拒否されることがあります。",
    ),
    "REQUIRED_ATTRIBUTE_ADDED": (
        "Property '{name}' is required by the reader's schema ({r}) but optional in the writer's ({w}): "
        "data written without it would be rejected.",
        "プロパティ「{name}」は読み取り側（{r}）で必須ですが、書き込み側（{w}）では任意です。"
        "これを含まないデータは拒否されます。",
    ),
    "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL": (
        "Property '{name}' is new and required in the reader's schema ({r}) without a default; "
        "the writer's closed schema ({w}) never writes it.",
        "プロパティ「{name}」は読み取り側（{r}）で新たに必須となり、既定値もありません。"
        "閉じた書き込み側（{w}）はこれを書きません。",
    ),
    "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL": (
        "Property '{name}' is new in the reader's schema ({r}) with constraints, but the writer's open "
        "schema ({w}) allows any value under that name.",
        "プロパティ「{name}」が制約付きで読み取り側（{r}）に加わりましたが、開いた書き込み側（{w}）は"
        "その名前で任意の値を許します。",
    ),
    "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL": (
        "Property '{name}' is new in the reader's schema ({r}) and narrower than what the writer's "
        "schema ({w}) allows for additional properties.",
        "プロパティ「{name}」が読み取り側（{r}）に加わりましたが、書き込み側（{w}）が追加プロパティに"
        "許す範囲より狭くなっています。",
    ),
    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL": (
        "Property '{name}' is missing from the reader's schema ({r}), which is closed "
        "(additionalProperties: false): data written with {w} that contains it would be rejected.",
        "読み取り側（{r}）は閉じたスキーマ（additionalProperties: false）で、プロパティ「{name}」が"
        "ありません。{w} で書かれたデータにこれがあると拒否されます。",
    ),
    "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL": (
        "Property '{name}' is missing from the reader's schema ({r}), whose additionalProperties do not "
        "accept every value {w} allows for it.",
        "プロパティ「{name}」が読み取り側（{r}）になく、その additionalProperties は {w} が"
        "このプロパティに許す値をすべては受け付けません。",
    ),
    "ADDITIONAL_PROPERTIES_REMOVED": (
        "The reader's schema ({r}) is closed (additionalProperties: false) where the writer's ({w}) "
        "allows additional properties.",
        "読み取り側（{r}）は追加プロパティを禁じました（additionalProperties: false）が、"
        "書き込み側（{w}）は許します。",
    ),
    "ADDITIONAL_PROPERTIES_NARROWED": (
        "The reader's schema ({r}) constrains additional properties that the writer's ({w}) leaves free.",
        "読み取り側（{r}）は、書き込み側（{w}）が自由にしている追加プロパティに制約を加えました。",
    ),
    "DEPENDENT_REQUIRED_ADDED": (
        "The reader's schema ({r}) requires {rv} whenever '{name}' is present; the writer's ({w}) did not.",
        "読み取り側（{r}）は「{name}」があるとき {rv} を必須にしましたが、書き込み側（{w}）はしていません。",
    ),
    "SUM_TYPE_NARROWED": (
        "An alternative of the writer's schema ({w}) is accepted by no alternative of the reader's ({r}).",
        "書き込み側（{w}）の選択肢の一つを、読み取り側（{r}）のどの選択肢も受け付けません。",
    ),
    "COMBINED_TYPE_CHANGED": (
        "The reader's schema ({r}) requires one of its alternatives, and none accepts every value of {w}.",
        "読み取り側（{r}）は選択肢のいずれかを求めますが、{w} のすべての値を受け付ける選択肢がありません。",
    ),
    "REF_UNRESOLVABLE": (
        "Comparing {w} with {r}: $ref {rv} cannot be resolved offline; it names no registered schema "
        "or bundled definition.",
        "{w} と {r} の比較: $ref {rv} をオフラインで解決できません。登録済みスキーマにも同梱の定義にもありません。",
    ),
}

LINT: Final[dict[str, tuple[str, str]]] = {
    "draft_2020_12": (
        "'$schema' must be {expected}.",
        "「$schema」は {expected} でなければなりません。",
    ),
    "id_present": (
        "'$id' must be the version's URI {expected}.",
        "「$id」はこの版の URI {expected} でなければなりません。",
    ),
    "title_present": ("The schema needs a non-empty 'title'.", "スキーマには空でない「title」が必要です。"),
    "object_schema": (
        "A dataset schema must be an object schema with 'properties'.",
        "データセットのスキーマは「properties」を持つ object 型でなければなりません。",
    ),
    "string_bounded": (
        "This string has no 'maxLength' (nor enum/const): every string must be bounded.",
        "この文字列には「maxLength」（または enum/const）がありません。文字列はすべて長さの上限が必要です。",
    ),
    "record_key_required": (
        "The record key '{name}' must be a declared, required property.",
        "レコードキー「{name}」は定義済みで必須のプロパティでなければなりません。",
    ),
    "location_declared": (
        "Location property '{name}' (dataset metadata) must be declared as a number.",
        "位置情報のプロパティ「{name}」（データセットのメタデータ）は number 型として定義が必要です。",
    ),
    "valid_schema": (
        "Not a valid draft 2020-12 schema: {detail}",
        "draft 2020-12 のスキーマとして正しくありません: {detail}",
    ),
    "offline_refs": (
        "$ref {detail} cannot be resolved offline.",
        "$ref {detail} をオフラインで解決できません。",
    ),
    "schema_size": (
        "The schema has {detail} subschemas; at most {limit} are accepted (split the dataset, or share "
        "definitions through $ref).",
        "スキーマのサブスキーマが {detail} 個あります。上限は {limit} 個です（データセットを分けるか、"
        "$ref で定義を共有してください）。",
    ),
    "pattern_supported": (
        "This regular expression cannot be used: {detail}. Patterns run on a linear-time engine (RE2): "
        "backreferences (\\1) and lookaround ((?=…), (?!…), (?<=…), (?<!…)) are not supported.",
        "この正規表現は使えません: {detail}。パターンは線形時間のエンジン（RE2）で評価されるため、"
        "後方参照（\\1）と先読み・後読み（(?=…)、(?!…)、(?<=…)、(?<!…)）は使えません。",
    ),
}
