"""What a field-level grant covers besides the records: the position and the schema."""

from __future__ import annotations

from cityos.domain.access import FULL, ReadAccess, grant_access

LOCATION = ("緯度", "経度")
SCHEMA = {
    "type": "object",
    "properties": {"NO": {"type": "string"}, "名称": {"type": "string"}, "緯度": {}, "経度": {}, "備考": {}},
    "required": ["NO", "名称", "備考"],
    "additionalProperties": False,
}


def test_the_position_needs_both_location_fields() -> None:
    assert FULL.location(LOCATION) == LOCATION
    assert grant_access(["名称", "緯度", "経度"], "NO").location(LOCATION) == LOCATION
    assert grant_access(["名称", "緯度"], "NO").location(LOCATION) is None
    assert grant_access(["名称"], "NO").location(LOCATION) is None
    assert FULL.location(None) is None


def test_a_grantee_sees_only_its_fields_in_the_schema() -> None:
    shown = grant_access(["名称"], "NO").schema(SCHEMA)
    assert list(shown["properties"]) == ["NO", "名称"] and shown["required"] == ["NO", "名称"]
    assert shown["additionalProperties"] is False and SCHEMA["required"] == ["NO", "名称", "備考"]
    assert FULL.schema(SCHEMA) == SCHEMA
    assert ReadAccess(frozenset()).schema({"type": "object"}) == {"type": "object"}
