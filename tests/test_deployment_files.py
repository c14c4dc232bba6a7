"""compose.yaml and the Dockerfile stay honest: commands, options and env names exist in the CLI/config."""

from __future__ import annotations

from typing import Any

import typer
import yaml

from spanline.cli import app
from spanline.core.config import Settings
from tests.conftest import PROJECT_ROOT

COMPOSE = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
SPANLINE_SERVICES = {name: svc for name, svc in COMPOSE["services"].items() if "build" in svc}


def resolve(command: list[str]) -> tuple[Any, list[str]]:
    """Walk the CLI's command tree along `command`; return the leaf and the remaining arguments.
    (Duck-typed: recent typer ships its own click classes.)"""
    node: Any = typer.main.get_command(app)
    rest = list(command)
    while hasattr(node, "commands") and rest and rest[0] in node.commands:
        node = node.commands[rest.pop(0)]
    return node, rest


def test_compose_has_kafka_clickhouse_and_spanline_services() -> None:
    images = {svc.get("image", "").split(":")[0] for svc in COMPOSE["services"].values()}
    assert {"apache/kafka", "clickhouse/clickhouse-server"} <= images
    assert {"api", "migrate"} <= set(SPANLINE_SERVICES)


def test_every_spanline_service_runs_a_real_cli_command_with_real_options() -> None:
    for name, service in SPANLINE_SERVICES.items():
        leaf, rest = resolve(service["command"])
        assert not hasattr(leaf, "commands"), f"{name}: {service['command']} is not a command"
        options = {opt for param in leaf.params for opt in getattr(param, "opts", [])}
        flags = [arg for arg in rest if arg.startswith("--")]
        assert set(flags) <= options, f"{name}: unknown options {set(flags) - options}"


def test_every_spanline_env_name_is_a_setting_and_parses() -> None:
    fields = {f"SPANLINE_{name.upper()}" for name in Settings.model_fields}
    for name, service in SPANLINE_SERVICES.items():
        env: dict[str, Any] = service["environment"]
        assert set(env) <= fields, f"{name}: unknown settings {set(env) - fields}"
        Settings(**{key.removeprefix("SPANLINE_").lower(): value for key, value in env.items()})


def test_published_ports_bind_to_loopback() -> None:
    for service in COMPOSE["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:")


def test_dockerfile_entrypoint_is_the_cli() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["spanline"]' in dockerfile
    assert "COPY schemas" in dockerfile and "COPY services" in dockerfile


def test_only_services_that_use_clickhouse_get_its_credentials() -> None:
    """The executor runs tenants' code nodes: it gets Kafka only (least privilege, SPEC §5)."""
    executor = SPANLINE_SERVICES["executor"]
    assert executor["command"] == ["executor"]
    assert not [name for name in executor["environment"] if "CLICKHOUSE" in name]
    assert "SPANLINE_KAFKA_BOOTSTRAP" in executor["environment"]
    for name in ("api", "migrate", "consumer"):
        assert "SPANLINE_CLICKHOUSE_DSN" in SPANLINE_SERVICES[name]["environment"], name


def test_the_executor_command_never_opens_the_store() -> None:
    """What `spanline executor` runs (the worker and everything it imports) has no ClickHouse client."""
    import subprocess
    import sys

    probe = (
        "import sys, spanline.executor.worker; print(sorted(m for m in sys.modules if m.startswith('spanline.store')))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert found.stdout.strip() == "[]"


def test_the_image_and_ci_install_bubblewrap() -> None:
    assert "bubblewrap" in (PROJECT_ROOT / "Dockerfile").read_text()
    assert "apt-get install -y --no-install-recommends bubblewrap" in (PROJECT_ROOT / ".ci" / "run").read_text()
