"""Settings fail fast with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from spanline.core.config import Settings


def test_defaults_are_the_embedded_mode() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.clickhouse_dsn.startswith("chdb://")
    assert settings.kafka_bootstrap is None
    assert settings.api_host == "127.0.0.1"


def test_env_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    monkeypatch.setenv("SPANLINE_TOPIC_PARTITIONS", "12")
    settings = Settings()
    assert (settings.kafka_bootstrap, settings.topic_partitions) == ("127.0.0.1:9092", 12)


def test_a_bad_dsn_is_refused() -> None:
    with pytest.raises(ValidationError, match="must start with chdb://"):
        Settings(clickhouse_dsn="postgres://x")


def test_the_cli_reports_bad_configuration_in_one_line() -> None:
    env = {**os.environ, "SPANLINE_CLICKHOUSE_DSN": "mysql://nope", "SPANLINE_TOPIC_PARTITIONS": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "spanline.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SPANLINE_CLICKHOUSE_DSN" in lines[0] and "SPANLINE_TOPIC_PARTITIONS" in lines[0]


def test_the_readme_documents_every_setting() -> None:
    from tests.conftest import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [f"SPANLINE_{name.upper()}" for name in Settings.model_fields if f"SPANLINE_{name.upper()}" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
