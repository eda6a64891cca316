"""Names of the analysis file formats, apart from the libraries that write them: a service that
only links to or announces a format need not load pyarrow (~50 MB per process) to name it."""

from __future__ import annotations

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
