"""Settings for every spanline service, read from `SPANLINE_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# schemas/ sits beside services/ in the source tree (see DESIGN.md's layout).
_SOURCE_SCHEMAS_DIR = Path(__file__).resolve().parents[3] / "schemas"

Compression = Literal["gzip", "lz4", "zstd", "none"]


class Settings(BaseSettings):
    """One settings object; it fails at start with one clear line when a value is wrong."""

    model_config = SettingsConfigDict(env_prefix="SPANLINE_", extra="ignore")

    clickhouse_dsn: str = Field(
        default="chdb://.spanline/chdb",
        description="chdb://<dir> for embedded ClickHouse (chDB) or http(s)://user:pass@host:port/db",
    )
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset means the in-process bus"
    )
    events_topic: str = "spanline.events"
    dlq_topic: str = "spanline.events.dlq"
    executions_topic: str = "spanline.executions"
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    consumer_group: str = "spanline-consumer"
    kafka_compression: Compression = "lz4"
    kafka_linger_ms: int = Field(default=10, ge=0, le=1000)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000)
    kafka_fetch_min_bytes: int = Field(default=1, ge=1, le=50 * 1024 * 1024)
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=0, le=60_000)
    default_org: str = Field(default="default", min_length=1)
    max_event_bytes: int = Field(default=1_048_576, ge=1024)
    max_request_bytes: int = Field(
        default=16 * 1_048_576, ge=1024, description="largest intake request body (monitoring events, OTLP)"
    )
    consumer_max_records: int = Field(default=10_000, ge=1, le=1_000_000)
    consumer_poll_ms: int = Field(default=500, ge=1, le=60_000)
    consumer_derive_interval_ms: int = Field(default=500, ge=0, le=60_000)
    consumer_log_interval_s: float = Field(default=10.0, gt=0)
    memory_bus_partition_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="in-process bus: bytes retained per partition"
    )
    live_buffer_execution_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="live hub: recent events kept per execution, in bytes"
    )
    live_buffer_total_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="live hub: recent events kept over all executions, in bytes"
    )
    live_queue_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="live hub: a subscriber's queue; past it the stream is dropped"
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    store_threads: int = Field(default=4, ge=1, le=64)
    api_key_cache_seconds: float = Field(default=30.0, ge=0)
    metrics_org: str | None = Field(
        default=None, description="the organization whose keys may read /metrics; unset: any valid key"
    )
    schemas_dir: Path = _SOURCE_SCHEMAS_DIR
    price_table: Path | None = Field(
        default=None, description="TOML price table (USD per million tokens); unset = the shipped one"
    )
    local_provider_latency_ms: int = Field(default=20, ge=0, le=60_000)
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible API, e.g. https://api.openai.com/v1"
    )
    openai_api_key: SecretStr | None = None
    otlp_endpoint: str | None = Field(default=None, description="OTLP/HTTP traces endpoint for the executor's spans")
    executor_concurrency: int = Field(default=8, ge=1, le=1000)
    executor_group: str = "spanline-executor"
    executor_max_queued_events: int = Field(default=10_000, ge=1, le=10_000_000)
    execute_timeout_s: float = Field(default=300.0, gt=0)
    publish_timeout_s: float = Field(default=10.0, gt=0, le=300)
    execute_stored_wait_s: float = Field(
        default=10.0, ge=0, description="how long execute-workflow waits for the consumer to have stored the run"
    )
    code_nodes: Literal["sandbox", "unsafe"] = Field(
        default="sandbox", description="sandbox = bubblewrap or refuse; unsafe = plain child process (trusted code)"
    )
    code_bwrap: str = "bwrap"
    code_python: Path | None = Field(default=None, description="the interpreter code nodes run on; unset = found")
    code_memory_bytes: int = Field(default=256 * 1024 * 1024, ge=32 * 1024 * 1024)
    code_cpu_seconds: int = Field(default=30, ge=1)
    code_max_processes: int = Field(default=16, ge=1)
    code_max_open_files: int = Field(default=64, ge=16)
    code_max_file_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    code_tmp_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    code_output_bytes: int = Field(default=64 * 1024, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("clickhouse_dsn")
    @classmethod
    def _known_dsn_scheme(cls, value: str) -> str:
        if not value.startswith(("chdb://", "http://", "https://")):
            raise ValueError(f"SPANLINE_CLICKHOUSE_DSN must start with chdb://, http:// or https://, got {value!r}")
        return value

    @field_validator("kafka_bootstrap", "metrics_org")
    @classmethod
    def _blank_means_unset(cls, value: str | None) -> str | None:
        return value or None
