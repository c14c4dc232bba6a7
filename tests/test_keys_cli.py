"""`spanline keys create / list / revoke` on the store of SPANLINE_CLICKHOUSE_DSN: in this process (typer's
CliRunner, on the test's own chDB database: chDB allows one process per directory) and as real processes
on a temporary chDB directory; and a revoked key refused by a live API within the key cache's TTL."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
from typer.testing import CliRunner, Result

from spanline.api.app import create_app
from spanline.bus.memory import MemoryBus
from spanline.cli import app
from spanline.core.config import Settings
from spanline.store.api_keys import PREFIX_LENGTH, create_api_key, hash_key, org_for_key
from spanline.store.store import Store
from tests.live_server import serve

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


async def spanline(dsn: str, *arguments: str) -> Result:
    """The command in this process, on a worker thread (it runs its own event loop)."""
    env = {"SPANLINE_CLICKHOUSE_DSN": dsn, "SPANLINE_LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(CliRunner().invoke, app, list(arguments), env=env)


def listed(output: str) -> dict[str, list[str]]:
    """`keys list` rows by prefix: created, revoked, name."""
    rows = [line.split(None, 3) for line in output.splitlines()[1:]]
    return {row[0]: row[1:] for row in rows}


async def test_keys_are_listed_by_prefix_and_revoked_by_it(clickhouse_dsn: str, store: Store) -> None:
    created = [
        (await spanline(clickhouse_dsn, "keys", "create", "--org", "acme", "--name", name)) for name in ("ci", "")
    ]
    other = await spanline(clickhouse_dsn, "keys", "create", "--org", "globex")
    assert all(result.exit_code == 0 for result in [*created, other])
    ci_key, plain_key = (result.stdout.strip() for result in created)

    shown = await spanline(clickhouse_dsn, "keys", "list", "--org", "acme")
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[0].split() == ["PREFIX", "CREATED", "REVOKED", "NAME"]
    rows = listed(shown.output)
    assert set(rows) == {ci_key[:PREFIX_LENGTH], plain_key[:PREFIX_LENGTH]}  # acme's keys only
    assert rows[ci_key[:PREFIX_LENGTH]][1:] == ["-", "ci"] and rows[plain_key[:PREFIX_LENGTH]][1:] == ["-"]
    assert all(re.fullmatch(TIME, row[0]) for row in rows.values())
    for secret in (ci_key, plain_key, hash_key(ci_key), ci_key[PREFIX_LENGTH:]):
        assert secret not in shown.output

    revoked = await spanline(clickhouse_dsn, "keys", "revoke", ci_key[:PREFIX_LENGTH])
    assert revoked.exit_code == 0 and f"revoked {ci_key[:PREFIX_LENGTH]}" in revoked.stdout
    assert await org_for_key(store, ci_key) is None
    assert await org_for_key(store, plain_key) == "acme"
    assert await org_for_key(store, other.stdout.strip()) == "globex"
    after = listed((await spanline(clickhouse_dsn, "keys", "list", "--org", "acme")).output)
    when = datetime.strptime(after[ci_key[:PREFIX_LENGTH]][1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - when).total_seconds()) < 60
    assert after[plain_key[:PREFIX_LENGTH]][1] == "-"

    again = await spanline(clickhouse_dsn, "keys", "revoke", ci_key[:PREFIX_LENGTH])  # changes nothing
    assert (
        again.exit_code == 0
        and listed((await spanline(clickhouse_dsn, "keys", "list", "--org", "acme")).output) == after
    )
    await store.command("OPTIMIZE TABLE api_keys FINAL")  # the merge keeps one row per key: the revocation
    assert await org_for_key(store, ci_key) is None and await org_for_key(store, plain_key) == "acme"


async def test_revoking_an_unknown_or_ambiguous_prefix_refuses_clearly(clickhouse_dsn: str, store: Store) -> None:
    mine = await create_api_key(store, "acme")
    prefix = mine.prefix
    # another organization's key with the same prefix (42 random bits make it rare, not impossible)
    await store.insert(
        "api_keys",
        [[hash_key("sl_collision"), prefix, "globex", "", datetime.now(UTC), 0]],
        ["key_hash", "key_prefix", "org", "name", "created_at", "revoked"],
    )
    unknown = await spanline(clickhouse_dsn, "keys", "revoke", "sl_nothing")
    assert unknown.exit_code == 1 and "no key with prefix 'sl_nothing'" in unknown.stderr
    ambiguous = await spanline(clickhouse_dsn, "keys", "revoke", prefix)
    assert ambiguous.exit_code == 1 and "2 keys (give --org)" in ambiguous.stderr
    assert await org_for_key(store, mine.key) == "acme"
    chosen = await spanline(clickhouse_dsn, "keys", "revoke", prefix, "--org", "acme")
    assert chosen.exit_code == 0, chosen.output
    assert await org_for_key(store, mine.key) is None and await org_for_key(store, "sl_collision") == "globex"
    nobody = await spanline(clickhouse_dsn, "keys", "list", "--org", "initech")
    assert nobody.exit_code == 0 and nobody.stdout.strip() == "no keys for organization 'initech'"


async def test_the_commands_as_processes_on_a_fresh_chdb_directory(tmp_path: Path) -> None:
    env = {**os.environ, "SPANLINE_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'chdb'}", "SPANLINE_LOG_LEVEL": "WARNING"}

    async def command(*arguments: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "spanline.cli", "keys", *arguments, env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, arguments
        return out.decode()

    key = (await command("create", "--org", "acme", "--name", "deploy")).strip()
    assert (await command("revoke", key[:PREFIX_LENGTH])).startswith(f"revoked {key[:PREFIX_LENGTH]}")
    rows = listed(await command("list", "--org", "acme"))
    assert list(rows) == [key[:PREFIX_LENGTH]] and re.fullmatch(TIME, rows[key[:PREFIX_LENGTH]][1])
    assert rows[key[:PREFIX_LENGTH]][2] == "deploy"


async def test_a_revoked_key_is_refused_by_a_live_api_within_the_cache_ttl(
    settings: Settings, store: Store, clickhouse_dsn: str
) -> None:
    ttl_s = 1.0
    cached = settings.model_copy(update={"api_key_cache_seconds": ttl_s})
    revoked, kept = (await create_api_key(store, "acme")).key, (await create_api_key(store, "acme")).key
    async with serve(create_app(cached, store=store, bus=MemoryBus())) as base_url, httpx.AsyncClient() as client:

        async def organization(key: str) -> httpx.Response:
            return await client.get(f"{base_url}/v1/organization", headers={"Authorization": f"Bearer {key}"})

        assert (await organization(revoked)).json() == {"id": "acme"}  # the API caches this answer now
        result = await spanline(clickhouse_dsn, "keys", "revoke", revoked[:PREFIX_LENGTH])
        assert result.exit_code == 0, result.output
        loop = asyncio.get_running_loop()
        revoked_at = loop.time()
        deadline = revoked_at + ttl_s + 2.0  # the TTL, plus slack for a loaded machine
        while (refused := await organization(revoked)).status_code == 200:
            assert loop.time() < deadline, "the revoked key still works past the cache TTL"
            await asyncio.sleep(0.05)  # poll until the cached answer expires
        assert refused.status_code == 401 and refused.json() == {"detail": "invalid API key"}
        assert (await organization(kept)).json() == {"id": "acme"}
        assert (await client.get(f"{base_url}/metrics", headers={"X-API-KEY": revoked})).status_code == 401
