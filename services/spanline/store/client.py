"""ClickHouse clients from a DSN: `chdb://<dir>` is embedded ClickHouse (chDB), http(s):// a server.

`chdb:///abs/dir` and `chdb://rel/dir` name the data directory; `?database=name` picks a database in
it (created when missing). A server DSN carries its database in the path, as clickhouse-connect reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

CHDB_SCHEME: Final = "chdb://"
# The batching consumer makes its own large inserts; server-side async inserts would only add a wait.
SESSION_SETTINGS: Final[dict[str, Any]] = {"async_insert": 0}


@dataclass(frozen=True, slots=True)
class ChdbLocation:
    path: str
    database: str | None


def parse_chdb_dsn(dsn: str) -> ChdbLocation:
    location, _, query = dsn.removeprefix(CHDB_SCHEME).partition("?")
    path = ":memory:" if location in ("", "memory", ":memory:") else location
    database = parse_qs(query).get("database", [None])[0]
    return ChdbLocation(path, database)


def is_embedded(dsn: str) -> bool:
    return dsn.startswith(CHDB_SCHEME)


_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _checked_database(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"database name {name!r} must be a plain identifier (letters, digits, _)")
    return name


def create_clickhouse_client(dsn: str) -> Client:
    if is_embedded(dsn):
        location = parse_chdb_dsn(dsn)
        if location.path != ":memory:":
            Path(location.path).mkdir(parents=True, exist_ok=True)
        client = clickhouse_connect.get_client(interface="chdb", path=location.path, settings=SESSION_SETTINGS)
        if location.database:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{_checked_database(location.database)}`")
            client.close()
            client = clickhouse_connect.get_client(
                interface="chdb", path=location.path, database=location.database, settings=SESSION_SETTINGS
            )
        return client
    database = urlsplit(dsn).path.strip("/")
    if database and database != "default":
        bootstrap = clickhouse_connect.get_client(dsn=dsn.replace(urlsplit(dsn).path, "/default", 1))
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{_checked_database(database)}`")
        bootstrap.close()
    return clickhouse_connect.get_client(dsn=dsn, settings=SESSION_SETTINGS)
