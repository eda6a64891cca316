"""One settings object for every service, read from the environment (prefix ``CITYOS_``)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Defaults run the whole stack on one machine with an embedded SQLite catalog."""

    model_config = SettingsConfigDict(env_prefix="CITYOS_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Kafka credential (SASL/SCRAM-SHA-512) for every client of this process. Empty: each service acts
    # as its own principal, whose password `cityos kafka setup` wrote into the secrets folder.
    kafka_username: str = ""
    kafka_password: str = ""
    # How long a service keeps trying its Kafka start-up (topics, transactions) while the cluster
    # answers "not authorized" or "no coordinator yet", as it does while new ACLs reach every broker
    # or after brokers restart (cityos.kernel.kafka_start); then it stops with the cause.
    kafka_start_retry_s: float = 60.0
    database_url: str = f"sqlite:///{REPO_ROOT / 'var' / 'cityos.db'}"
    schemas_dir: Path = REPO_ROOT / "schemas"
    # Reviewed KPI files of the DX plan (kpis/<id>.json), one per indicator: cityos.domain.kpi.
    kpi_dir: Path = REPO_ROOT / "kpis"
    # Generated secrets (Kafka passwords, keys for pseudonyms), one 0600 file each: see
    # cityos.kernel.secret_store. Never committed; deleting a file rotates that secret.
    secrets_dir: Path = REPO_ROOT / "var" / "secrets"
    # Third-party browser assets (map library, API docs UI) served from our own origin, never a CDN:
    # `make env` fetches them from npm at the versions pinned in web/package-lock.json.
    web_assets_dir: Path = REPO_ROOT / "web" / "node_modules"
    # The wards' boundary files (国土数値情報 N03, one <N03 code>.json per ward) `cityos geo load-wards`
    # reads by default.
    ward_boundaries_dir: Path = (
        REPO_ROOT.parent / "shared" / "fixtures" / "opendata-jp" / "boundaries" / "kitakyushu-wards-n03-2022"
    )

    # Topics. Departments publish to <prefix>dept.<department>.events; ingest follows them by
    # pattern so a new department needs no redeploy. The prefix isolates environments (and tests)
    # sharing one cluster.
    topic_prefix: str = ""
    validated_topic_name: str = "cityos.validated"
    deadletter_topic_name: str = "cityos.deadletter"
    # Compacted topic of registered schema versions (key: schema URI): every ingest process follows
    # it, so a version registered while ingest runs validates new events within seconds.
    schemas_topic_name: str = "cityos.schemas"
    ingest_group: str = "cityos-ingest"
    catalog_group: str = "cityos-catalog"

    # Largest request body any HTTP service reads (bytes); a larger one is refused with 413 before it
    # is parsed (cityos.kernel.http_limits). 1 MiB holds any schema or API call many times over.
    http_max_body_bytes: int = 1024 * 1024

    publish_host: str = "127.0.0.1"
    publish_port: int = 8000
    catalog_host: str = "127.0.0.1"
    catalog_port: int = 8001
    ingest_metrics_host: str = "127.0.0.1"
    ingest_metrics_port: int = 8002
    # Dead-letter fingerprints each ingest process remembers (read back from the dead-letter topic's
    # tail at start, then followed), so the same refused event is dead-lettered once however often it
    # is sent again; about 170 bytes each (17 MB for the default). 0 turns the memory off.
    ingest_deadletter_memory: int = 100_000
    # CloudEvents over HTTP (`cityos serve ingest-http`): its port; a department's requests per
    # minute; the largest batch (events, bytes) one request may carry (a larger one answers 413).
    ingest_http_host: str = "127.0.0.1"
    ingest_http_port: int = 8004
    ingest_http_rate_per_minute: int = 60_000
    ingest_http_max_batch_events: int = 1000
    ingest_http_max_batch_bytes: int = 8 * 1024 * 1024

    # Public base URL of the publish API, used in links (DCAT, CKAN resources, paging). Empty: each
    # answer's links point where its request came in (its Host header), so a stack on any host or
    # port links to itself; set it when clients must be sent elsewhere (a canonical public name).
    public_base_url: str = ""
    # Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-Proto and
    # X-Forwarded-Host are believed for those links; none by default, so no client can choose them.
    publish_trusted_proxies: str = ""

    # Feeds. The republisher's metrics/health port; its consumer group on the validated
    # topic; its transactional id is <prefix><name>-<instance>: stable per instance, so a restarted
    # instance fences its predecessor and aborts what it left open (set a distinct instance number
    # per process when running several).
    feeds_metrics_host: str = "127.0.0.1"
    feeds_metrics_port: int = 8003
    feeds_group: str = "cityos-feeds"
    feeds_instance: int = 0
    feeds_transactional_id_name: str = "cityos-feeds"
    feeds_state_topic_name: str = "cityos.feeds.state"
    feeds_batch_size: int = 2000
    # How often the republisher reloads grants and subscriptions while idle (it also re-checks
    # them before every transaction commits, so a revoke is never outrun).
    feeds_policy_refresh_s: float = 0.2
    feeds_partitions: int = 3

    # Analysis-ready snapshots: Parquet files of every dataset, of every classification -- the city's
    # own analysis store, never served to the public. Where `cityos snapshot write` and the analysis
    # service write them; how often the service writes the current state (seconds); its
    # metrics/health port.
    snapshot_dir: Path = REPO_ROOT / "var" / "snapshots"
    snapshot_interval_s: float = 3600.0
    analysis_host: str = "127.0.0.1"
    analysis_port: int = 8005
    # Break-glass only: administrators work with personal credentials (`cityos admins issue NAME`),
    # audited by name. When set, this token also acts as an administrator over HTTP, audited as
    # "admin:break-glass" and logged at every use; leave it empty except to regain access.
    admin_token: str = ""
    # Days a department or administrator credential lives when issued without an explicit expiry.
    credential_lifetime_days: int = 90
    # Catalog API requests per minute per credential, and per address for requests whose credential
    # is missing or refused (so guessing credentials is throttled to 429).
    catalog_rate_per_minute: int = 600
    catalog_unauthenticated_rate_per_minute: int = 60

    # Open-data API limits: requests per minute for anonymous callers (per address) and
    # for registered keys without their own limit; usage counters are flushed to the DB this often.
    # 300/min anonymous (5 req/s per address) serves a script or a map page; keys get ten times that.
    publish_anonymous_rate_per_minute: int = 300
    publish_key_rate_per_minute: int = 3000
    publish_usage_flush_interval_s: float = 10.0
    # A rendered records page is served again for at most this long (seconds), so a change shows
    # within it (the platform promises one second); 0 renders every request anew.
    publish_page_cache_ttl_s: float = 0.2
    # Publish's /metrics carries the DX plan's KPIs for the whole city; a department's own figures are
    # that department's to read, so their series appear only when this is on (for a /metrics that
    # only monitoring can reach). Seconds between two computations of the KPI gauges.
    publish_kpi_department_metrics: bool = False
    publish_kpi_metrics_ttl_s: float = 30.0
    # Worker processes of the publish API (uvicorn workers sharing one socket). 1 by default: rate
    # limits, the page cache and /metrics are per process (docs/open-data-api.md), so more workers
    # are an operator's choice on a multi-core host, up to its core count.
    publish_workers: int = 1
    # Contact point published in DCAT and CKAN metadata for every dataset.
    open_data_contact_email: str = "opendata@city.example.jp"

    catalog_batch_size: int = 500
    catalog_batch_timeout_s: float = 0.2
    # Events dated further than this into the future are rejected at decode time.
    max_future_skew_s: int = 300

    @property
    def validated_topic(self) -> str:
        return self.topic_prefix + self.validated_topic_name

    @property
    def deadletter_topic(self) -> str:
        return self.topic_prefix + self.deadletter_topic_name

    @property
    def schemas_topic(self) -> str:
        return self.topic_prefix + self.schemas_topic_name

    @property
    def department_topic_pattern(self) -> str:
        return "^" + re.escape(self.topic_prefix) + r"dept\.[a-z0-9-]+\.events$"

    @property
    def feeds_state_topic(self) -> str:
        return self.topic_prefix + self.feeds_state_topic_name

    @property
    def feeds_transactional_id(self) -> str:
        return f"{self.topic_prefix}{self.feeds_transactional_id_name}-{self.feeds_instance}"

    def department_topic(self, department: str) -> str:
        return f"{self.topic_prefix}dept.{department}.events"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return Settings()
