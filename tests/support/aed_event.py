"""One good structured AED upsert, and the clock it is judged at: the agreement tests mutate it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cityos.kernel.schemas import schema_uri

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)
GOOD_AED_EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "/departments/fire/aed",
    "type": "jp.cityos.record.upserted",
    "time": "2026-11-27T20:00:00+09:00",
    "dataschema": schema_uri("aed", 1),
    "data": {
        "NO": "1",
        "名称": "市役所",
        "名称_カナ": "シヤクショ",
        "住所": "北九州市小倉北区城内1-1",
        "設置位置": "1階",
        "緯度": 33.88,
        "経度": 130.87,
        "開始時間": "08:30",
    },
}
