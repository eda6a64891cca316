"""The unchanged ``ckanapi`` client against a real publish server, over the real Yaizu AED CSV."""

from __future__ import annotations

from pathlib import Path

import ckanapi
import pytest

from tests.support.publish import (
    HIDDEN_IDS,
    events,
    hidden_rows,
    load,
    schemas_with_sites,
    serve,
    yaizu_aed_rows,
)


def test_ckanapi_lists_shows_searches_and_pages_every_row_once(database_url: str, tmp_path: Path) -> None:
    schemas_dir = schemas_with_sites(tmp_path)
    rows = yaizu_aed_rows(schemas_dir)
    assert len(rows) > 20  # the real file, not a stub
    engine = load(database_url, schemas_dir, events("aed", rows) + hidden_rows())
    try:
        with serve(engine, database_url) as server:
            ckan = ckanapi.RemoteCKAN(server.url, user_agent="cityos-test")

            names = ckan.action.package_list()
            assert "aed" in names
            assert not set(HIDDEN_IDS) & set(names)

            package = ckan.action.package_show(id="aed")
            assert package["name"] == "aed"
            assert package["title"] == "AED設置箇所一覧"
            assert package["organization"]["name"] == "fire"
            formats = {r["format"] for r in package["resources"]}
            assert formats == {"CSV", "JSON", "GeoJSON", "NDJSON", "Parquet"}
            for hidden in HIDDEN_IDS:
                with pytest.raises(ckanapi.NotFound):
                    ckan.action.package_show(id=hidden)

            found = ckan.action.package_search(q="AED", rows=5)
            assert [p["name"] for p in found["results"]] == ["aed"]
            assert found["count"] == 1
            by_org = ckan.action.package_search(fq="organization:fire")
            assert {p["name"] for p in by_org["results"]} == {"aed"}
            everything = ckan.action.package_search(rows=1000)
            assert not set(HIDDEN_IDS) & {p["name"] for p in everything["results"]}

            organizations = ckan.action.organization_list()
            assert "fire" in organizations
            fire = ckan.action.organization_show(id="fire", include_datasets=True)
            assert [p["name"] for p in fire["packages"]] == ["aed"]

            csv_resource = next(r for r in package["resources"] if r["format"] == "CSV")
            assert ckan.action.resource_show(id=csv_resource["id"])["url"].endswith("/export?format=csv")

            seen: list[str] = []
            offset, page_size = 0, 7
            while True:
                page = ckan.action.datastore_search(
                    resource_id=csv_resource["id"], limit=page_size, offset=offset
                )
                assert page["total"] == len(rows)
                if not page["records"]:
                    break
                seen += [record["NO"] for record in page["records"]]
                offset += page_size
            assert sorted(seen) == sorted(key for key, _ in rows)
            assert len(seen) == len(set(seen))

            first = rows[0][1]
            filtered = ckan.action.datastore_search(
                resource_id=csv_resource["id"], filters={"名称": first["名称"]}, fields=["NO", "名称"]
            )
            assert filtered["records"] and all(r["名称"] == first["名称"] for r in filtered["records"])
            assert {f["id"] for f in filtered["fields"]} == {"_id", "NO", "名称"}
            with pytest.raises(ckanapi.ValidationError):
                ckan.action.datastore_search(resource_id=csv_resource["id"], filters={"no such field": "x"})
            with pytest.raises(ckanapi.NotFound):
                ckan.action.datastore_search(resource_id="copier-usage.csv")
    finally:
        engine.dispose()


def test_ckanapi_maps_our_errors_to_its_exceptions_and_reads_help(database_url: str, tmp_path: Path) -> None:
    schemas_dir = schemas_with_sites(tmp_path)
    rows = yaizu_aed_rows(schemas_dir)
    engine = load(database_url, schemas_dir, events("aed", rows) + hidden_rows())
    try:
        with serve(engine, database_url) as server:
            ckan = ckanapi.RemoteCKAN(server.url, user_agent="cityos-test")

            with pytest.raises(ckanapi.NotFound) as missing:
                ckan.action.package_show(id="no-such-dataset")
            # ckanapi cuts CKAN's "Not found: " title off the message, as it does for CKAN itself.
            assert missing.value.args == ("Dataset not found",)
            with pytest.raises(ckanapi.NotFound):
                ckan.action.resource_show(id="aed.xlsx")
            with pytest.raises(ckanapi.NotFound):
                ckan.action.help_show(name="package_create")
            with pytest.raises(ckanapi.ValidationError) as invalid:
                ckan.action.package_search(rows="many")
            assert invalid.value.error_dict == {"__type": "Validation Error", "rows": ["Invalid integer"]}
            with pytest.raises(ckanapi.CKANAPIError):
                ckan.call_action("no_such_action")

            # The dataset's own id reads the same records as any of its resource ids.
            by_dataset = ckan.action.datastore_search(resource_id="aed", limit=1000)
            by_resource = ckan.action.datastore_search(resource_id="aed.csv", limit=1000)
            assert by_dataset["total"] == by_resource["total"] == len(rows)
            assert by_dataset["records"] == by_resource["records"]

            documentation = ckan.action.help_show(name="datastore_search")
            assert ":param resource_id:" in documentation
    finally:
        engine.dispose()
