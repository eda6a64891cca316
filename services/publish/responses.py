"""The shapes of the open-data API's JSON bodies, as ``/openapi.json`` shows them to developers.

Most handlers answer with bytes prepared by ``render``/``ckan`` (orjson, copied record text) for
speed, so these models document the bodies rather than produce them: routes name them under
``responses`` and FastAPI never re-serialises a returned ``Response``. Records themselves are
objects whose properties are the dataset's JSON Schema, served by ``GET /api/v1/datasets/{id}``.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel

Result = TypeVar("Result")

# A record as published: the properties of its dataset's current JSON Schema.
RecordObject = dict[str, Any]


class _Body(BaseModel):
    # Field names are the wire names (aliases where Python cannot spell them).
    model_config = ConfigDict(populate_by_name=True)


# --- operations -----------------------------------------------------------------------------------


class Health(_Body):
    status: str = Field(examples=["ok"])


class Readiness(_Body):
    status: str = Field(description="`ready`, or `unavailable` (with status 503)", examples=["ready"])
    detail: str | None = Field(None, description="Only when unavailable: the kind of database error")


# --- datasets -------------------------------------------------------------------------------------


class TextPair(_Body):
    ja: str
    en: str


class DepartmentRef(_Body):
    id: str
    name: TextPair | None = Field(description="Null when the department is not registered")


class DatasetLinks(_Body):
    self_: str = Field(alias="self")
    records: str
    csv: str
    geojson: str | None = Field(None, description="Only for datasets that declare a location")


class DetailLinks(DatasetLinks):
    export: str
    dcat: str
    ckan: str


class DatasetSummary(_Body):
    id: str
    title: TextPair
    description: TextPair
    department: DepartmentRef
    license: str
    classification: str = Field(examples=["public"])
    keywords: list[Any]
    update_frequency: Any = Field(description="As declared in the dataset's metadata, or null")
    record_count: int
    last_updated: str | None = Field(description="Newest event time, RFC 3339 UTC")
    links: DatasetLinks


class DatasetListEntry(DatasetSummary):
    five_star: int = Field(ge=0, le=5)


class DatasetList(_Body):
    count: int
    datasets: list[DatasetListEntry]


class ApiIndexLinks(_Body):
    datasets: str = Field(description="The datasets you may read")
    docs: str = Field(description="Interactive documentation")
    openapi: str = Field(description="OpenAPI description")
    dcat: str = Field(description="DCAT-AP 3 catalog (Turtle)")
    ckan: str = Field(description="CKAN action API (package_list)")


class ApiIndex(_Body):
    title: str
    version: str
    links: ApiIndexLinks


class StarCriterion(_Body):
    level: int
    criterion: str
    met: bool
    reason: str


class FiveStarRating(_Body):
    stars: int = Field(ge=0, le=5)
    criteria: list[StarCriterion]


class MetadataQuality(_Body):
    score: int = Field(ge=0, le=100)
    present: list[str]
    missing: list[str]


class Location(_Body):
    latitude: str = Field(description="Property holding the latitude")
    longitude: str = Field(description="Property holding the longitude")


class SchemaRef(_Body):
    uri: str
    version: int
    document: dict[str, Any] = Field(description="The JSON Schema of the records")


class DatasetDetail(DatasetSummary):
    links: DetailLinks
    record_key: str
    location: Location | None
    schema_: SchemaRef | None = Field(alias="schema")
    five_star: FiveStarRating
    metadata_quality: MetadataQuality


# --- records --------------------------------------------------------------------------------------


class RecordsPage(_Body):
    dataset: str
    total: int = Field(description="Records matching the filters")
    limit: int
    offset: int
    records: list[RecordObject]
    next: str | None = Field(description="URL of the following page, or null on the last")
    next_cursor: str | None = Field(description="Pass as `cursor` for the following page (keyset order)")


class Record(RootModel[RecordObject]):
    """One record: the properties of its dataset's schema (only the fields you may read)."""


class RecordArray(RootModel[list[RecordObject]]):
    """Every record of the (filtered) dataset."""


# --- usage ----------------------------------------------------------------------------------------


class UsageRow(_Body):
    hour: str = Field(description="Start of the hour, RFC 3339 UTC")
    dataset: str
    key_class: str
    key: str = Field(
        description="Pseudonym of the API key (HMAC-SHA256 under a server secret); empty for anonymous use"
    )
    format: str
    requests: int
    rows: int
    bytes: int


class UsageReport(_Body):
    from_: str = Field(alias="from", description="RFC 3339 UTC")
    to: str = Field(description="RFC 3339 UTC, exclusive")
    rows: list[UsageRow]


# --- anonymized releases --------------------------------------------------------------------------


class OpenProposalCall(_Body):
    id: str
    dataset: str
    title: str
    opens_at: str
    closes_at: str


class PersonalInformationFile(_Body):
    """One entry of the 個人情報ファイル簿 (wire names are the register's Japanese headings)."""

    dataset: str
    name: str = Field(alias="名称")
    purpose: str | None = Field(alias="利用目的")
    items: list[str] = Field(alias="記録項目")
    open_to_proposals: bool = Field(alias="提案募集の対象")
    submit_to: str | None = Field(alias="提案の提出先")
    open_calls: list[OpenProposalCall] = Field(alias="募集中")
    release_overviews: list[dict[str, Any]] = Field(alias="匿名加工情報の概要")


# --- CKAN action API ------------------------------------------------------------------------------


class CkanResponse(_Body, Generic[Result]):
    help: str
    success: bool = Field(examples=[True])
    result: Result


class CkanErrorResponse(_Body):
    help: str
    success: bool = Field(examples=[False])
    error: dict[str, Any] = Field(description="`__type` and a message, or per-field messages")


class CkanStatus(_Body):
    ckan_version: str
    site_url: str
    site_title: str
    extensions: list[str]


class CkanOrganization(_Body):
    id: str
    name: str
    title: str
    display_name: str
    title_translated: TextPair
    description: str
    type: str
    is_organization: bool
    state: str
    approval_status: str
    image_url: str
    package_count: int


class CkanResource(_Body):
    id: str
    package_id: str
    name: str
    description: str
    format: str
    mimetype: str
    url: str
    url_type: str
    datastore_active: bool
    state: str
    position: int
    last_modified: str | None
    created: str | None
    resource_type: str


class CkanTag(_Body):
    name: str
    display_name: str
    state: str


class CkanExtra(_Body):
    key: str
    value: str


class CkanPackage(_Body):
    id: str
    name: str
    title: str
    title_translated: TextPair
    notes: str
    notes_translated: TextPair
    type: str
    state: str
    private: bool
    license_id: str
    license_title: str
    license_url: str
    isopen: bool
    url: str
    version: str | None
    author: str
    maintainer: str
    maintainer_email: str
    owner_org: str
    organization: CkanOrganization | None
    metadata_created: str | None
    metadata_modified: str | None
    tags: list[CkanTag]
    num_tags: int
    groups: list[Any]
    resources: list[CkanResource]
    num_resources: int
    extras: list[CkanExtra]


class CkanOrganizationWithPackages(CkanOrganization):
    packages: list[CkanPackage] | None = Field(None, description="Only with include_datasets=true")


class CkanSearchResult(_Body):
    count: int
    results: list[CkanPackage]
    sort: str
    facets: dict[str, Any]
    search_facets: dict[str, Any]


class DatastoreField(_Body):
    id: str
    type: str = Field(examples=["text", "int", "numeric", "bool"])


class DatastoreLinks(_Body):
    start: str
    next: str


class DatastoreSearchResult(_Body):
    resource_id: str
    fields: list[DatastoreField]
    records: list[RecordObject]
    records_format: str = Field(examples=["objects"])
    total: int
    total_was_estimated: bool
    limit: int
    offset: int
    include_total: bool
    links: DatastoreLinks = Field(alias="_links")


# The 200 envelope of each action, by name: ``result`` is the action's own answer.
CKAN_RESULTS: dict[str, type[BaseModel]] = {
    "status_show": CkanResponse[CkanStatus],
    "package_list": CkanResponse[list[str]],
    "current_package_list_with_resources": CkanResponse[list[CkanPackage]],
    "package_show": CkanResponse[CkanPackage],
    "package_search": CkanResponse[CkanSearchResult],
    # Names, or whole organizations with all_fields=true.
    "organization_list": CkanResponse[list[str] | list[CkanOrganization]],
    "organization_show": CkanResponse[CkanOrganizationWithPackages],
    "resource_show": CkanResponse[CkanResource],
    "datastore_search": CkanResponse[DatastoreSearchResult],
    # The action's documentation, as CKAN's help_show answers (every envelope's ``help`` links here).
    "help_show": CkanResponse[str],
}
