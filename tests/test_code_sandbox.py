"""Hostile code nodes, each uploaded and run through the public API on a live server (real uvicorn, chDB,
the executor in the same process, bubblewrap as in production). Each run ends REJECTED with a precise
code, or finds nothing; /healthz answers within 1 s after each; no process outlives its run."""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import httpx
import pytest

from spanline.core.config import Settings
from spanline.events.models import NodeExecutionFulfilledEvent, NodeExecutionLogEvent, event_name
from spanline.executor.providers.local import LocalProvider
from spanline.store.store import Store
from tests.conftest import PROJECT_ROOT
from tests.executor_runtime import Runtime, executor_runtime

FAKE_OPENAI_KEY: Final = "sk-fake-" + uuid.uuid4().hex
PR_SET_CHILD_SUBREAPER: Final = 36


@pytest.fixture(scope="module", autouse=True)
def adopt_orphans() -> Iterator[None]:
    """This process becomes the subreaper of everything it starts, so a sandboxed process that escaped
    its run would still show up among our descendants."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def live_descendants() -> set[str]:
    children: dict[int, list[int]] = {}
    states: dict[int, tuple[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended while we looked
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        children.setdefault(int(ppid), []).append(int(entry.name))
        states[int(entry.name)] = (state, cmdline[:120])
    found, todo = set(), list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        state, cmdline = states[pid]
        if state != "Z":  # a zombie has ended; it only waits to be reaped
            found.add(f"{pid} {cmdline}")
    return found


@pytest.fixture
async def runtime(
    settings: Settings, store: Store, clickhouse_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    # the secrets a real deployment has in the executor's environment
    monkeypatch.setenv("SPANLINE_OPENAI_API_KEY", FAKE_OPENAI_KEY)
    monkeypatch.setenv("SPANLINE_CLICKHOUSE_DSN", clickhouse_dsn)
    async with executor_runtime(settings, store, {"local": LocalProvider(1)}) as running:
        yield running


async def run_node(runtime: Runtime, code: str, timeout_s: float = 5.0, **inputs: str) -> tuple[dict[str, Any], UUID]:
    """Upload a one-node workflow, run it with POST /v1/execute-workflow, check the server afterwards."""
    name = f"probe_{uuid.uuid4().hex[:8]}"
    definition = {
        "name": name,
        "inputs": [{"name": key, "type": "STRING"} for key in inputs],
        "nodes": [
            {
                "id": "probe",
                "kind": "code",
                "timeout_s": timeout_s,
                "config": {"code": code},
                "inputs": {key: {"workflow_input": key} for key in inputs},
            }
        ],
        "outputs": [{"name": "found", "from": {"node": "probe"}}],
    }
    assert (await runtime.client.post("/api/v1/workflow/workflows", json=definition)).status_code == 201
    before = live_descendants()  # e.g. the session's Kafka broker
    response = await runtime.client.post(
        "/v1/execute-workflow",
        json={
            "workflow_deployment_name": name,
            "inputs": [{"name": key, "type": "STRING", "value": value} for key, value in inputs.items()],
        },
    )
    assert response.status_code == 200, response.text
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=1.0) as fresh:
        health = await fresh.get(f"{runtime.base_url}/healthz")
    assert health.status_code == 200 and time.monotonic() - started < 1.0
    assert live_descendants() - before == set()
    answer = response.json()
    return answer["data"], UUID(answer["execution_id"])


def found(data: dict[str, Any]) -> Any:
    assert data["state"] == "FULFILLED", data
    (output,) = data["outputs"]
    return output["value"]


def rejected(data: dict[str, Any]) -> tuple[str, str]:
    assert data["state"] == "REJECTED", data
    return data["error"]["code"], data["error"]["message"]


READ_ENVIRONMENT = """
import os
def main():
    seen = {'environ': dict(os.environ), 'uid': os.getuid(), 'gid': os.getgid(), 'proc': {}}
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                seen['proc'][pid] = open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace')
            except OSError as exc:
                seen['proc'][pid] = type(exc).__name__
    return {'output': seen}
"""


async def test_the_environment_holds_no_secrets(runtime: Runtime) -> None:
    data, _ = await run_node(runtime, READ_ENVIRONMENT)
    seen = found(data)
    assert set(seen["environ"]) <= {"PATH", "LANG", "HOME", "PWD"}
    assert seen["uid"] == 65534 and seen["gid"] == 65534
    everything = repr(seen)
    assert FAKE_OPENAI_KEY not in everything and "SPANLINE_" not in everything and "chdb://" not in everything
    assert 1 <= len(seen["proc"]) <= 3  # only the sandbox's own processes: its init, the child (and a reaper)


WALK_FILESYSTEM = """
import os, sys
def main(data_dir, service_file, project):
    outside = []
    for top in os.listdir('/'):
        if top in ('proc', 'dev', 'sys', 'usr', 'lib', 'lib64', 'bin', 'sbin', 'lib32', 'libx32'):
            continue
        for root, dirs, files in os.walk('/' + top):
            outside += [os.path.join(root, name) for name in files]
    tried = {}
    for path in (data_dir, service_file, project, '/etc/passwd'):
        try:
            tried[path] = sorted(os.listdir(path)) if os.path.isdir(path) else open(path).read()[:100]
        except OSError as exc:
            tried[path] = type(exc).__name__
    listing = {'cwd': os.getcwd(), 'cwd_files': os.listdir('.'), 'outside': outside, 'prefix': sys.prefix}
    with open('scratch-of-this-run', 'w') as f:
        f.write('left for the next run')
    return {'output': {**listing, 'tried': tried}}
"""


async def test_the_filesystem_has_no_data_directory_no_service_files_and_no_other_runs_scratch(
    runtime: Runtime, clickhouse_dsn: str
) -> None:
    data_dir = clickhouse_dsn.removeprefix("chdb://").split("?")[0]
    assert await asyncio.to_thread(os.path.isdir, data_dir)  # it is there for the service
    service_file = str(PROJECT_ROOT / "services" / "spanline" / "core" / "config.py")
    inputs = {"data_dir": data_dir, "service_file": service_file, "project": str(PROJECT_ROOT)}
    for _ in range(2):  # the second run must not see the first one's scratch file
        data, _ = await run_node(runtime, WALK_FILESYSTEM, **inputs)
        seen = found(data)
        assert seen["cwd"] == "/tmp" and seen["cwd_files"] == []
        # outside the system directories there are only the interpreter's own files (read-only), nothing in /tmp
        assert all(path.startswith(seen["prefix"] + "/") for path in seen["outside"]), seen["outside"][:5]
        assert seen["tried"] == dict.fromkeys(inputs.values(), "FileNotFoundError") | {
            "/etc/passwd": "FileNotFoundError"
        }


CONNECT = """
import socket
def main(api_port, other_host):
    tried = {}
    for host, port in (('127.0.0.1', int(api_port)), (other_host, 80), ('1.1.1.1', 53)):
        try:
            socket.create_connection((host, port), timeout=1).close()
            tried[f'{host}:{port}'] = 'connected'
        except OSError as exc:
            tried[f'{host}:{port}'] = f'{type(exc).__name__} {exc.errno}'
    return {'output': tried}
"""


def non_loopback_address() -> str:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent; this picks the outgoing address
            return str(probe.getsockname()[0])
        except OSError:
            return "10.0.0.1"


async def test_there_is_no_network(runtime: Runtime) -> None:
    api_port = runtime.base_url.rsplit(":", 1)[1]
    other = non_loopback_address()
    data, _ = await run_node(runtime, CONNECT, api_port=api_port, other_host=other)
    assert found(data) == {
        f"127.0.0.1:{api_port}": "ConnectionRefusedError 111",  # its own loopback, not the server's
        f"{other}:80": "OSError 101",  # ENETUNREACH: no interface but loopback
        "1.1.1.1:53": "OSError 101",
    }


async def test_four_gib_is_refused(runtime: Runtime) -> None:
    data, _ = await run_node(runtime, "def main():\n    return len(bytearray(4 * 1024 ** 3))")
    assert rejected(data) == ("NODE_EXECUTION", "MemoryError")


FORK_COUNT = """
import os, time
def main():
    started = 0
    try:
        while started < 1000:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            started += 1
    except OSError as exc:
        return {'output': {'started': started, 'error': type(exc).__name__}}
    return {'output': {'started': started}}
"""

FORK_BOMB = """
import os
def main():
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""


async def test_processes_are_bounded_and_a_fork_bomb_dies_with_its_timeout(runtime: Runtime) -> None:
    data, _ = await run_node(runtime, FORK_COUNT)
    result = found(data)
    assert result["error"] == "BlockingIOError" and result["started"] < runtime.settings.code_max_processes
    started = time.monotonic()
    data, _ = await run_node(runtime, FORK_BOMB, timeout_s=1.5)
    code, message = rejected(data)
    assert code == "NODE_TIMEOUT" and message.endswith("exceeded its 1.5s timeout")
    assert time.monotonic() - started < 5


async def test_a_busy_loop_is_killed_at_its_timeout(runtime: Runtime) -> None:
    started = time.monotonic()
    data, _ = await run_node(runtime, "def main():\n    while True:\n        pass", timeout_s=1.0)
    code, message = rejected(data)
    assert code == "NODE_TIMEOUT" and message.endswith("exceeded its 1s timeout")
    assert time.monotonic() - started < 4


WRITE_A_GIGABYTE = """
def main():
    block = b'0' * (1024 * 1024)
    with open('big', 'wb') as f:
        for _ in range(1024):
            f.write(block)
"""


async def test_writing_a_gigabyte_stops_at_the_file_size_limit(runtime: Runtime) -> None:
    data, _ = await run_node(runtime, WRITE_A_GIGABYTE)
    assert rejected(data) == ("NODE_EXECUTION", "[Errno 27] File too large")


async def test_printing_50_mb_is_truncated_into_one_log_event_and_the_result_is_intact(runtime: Runtime) -> None:
    code = "import sys\ndef main():\n    sys.stdout.write('x' * (50 * 1024 * 1024))\n    return {'output': 'intact'}"
    data, execution_id = await run_node(runtime, code)
    assert found(data) == "intact"
    logs = [event for _, event in await runtime.events_of(execution_id) if isinstance(event, NodeExecutionLogEvent)]
    (log,) = logs
    limit = runtime.settings.code_output_bytes
    assert log.body.severity == "INFO"
    assert log.body.message == "x" * limit + f"\n[... {50 * 1024 * 1024 - limit} more bytes truncated]"


async def test_print_output_becomes_log_events_before_the_nodes_end(runtime: Runtime) -> None:
    code = (
        "import sys\ndef main(name):\n    print('hello', name)\n    print('careful', file=sys.stderr)\n"
        "    return {'output': {'greeted': name}}"
    )
    data, execution_id = await run_node(runtime, code, name="ada")
    assert found(data) == {"greeted": "ada"}
    events = [event for _, event in await runtime.events_of(execution_id)]
    logs = [(e.body.severity, e.body.message) for e in events if isinstance(e, NodeExecutionLogEvent)]
    assert logs == [("INFO", "hello ada\n"), ("ERROR", "careful\n")]
    names = [event_name(e) for e in events if e.span_id == events[1].span_id]
    assert names == ["node.execution.initiated", "node.execution.log", "node.execution.log", "node.execution.fulfilled"]
    (fulfilled,) = [e for e in events if isinstance(e, NodeExecutionFulfilledEvent)]
    assert fulfilled.body.outputs == {"output": {"greeted": "ada"}}


async def test_a_crash_is_rejected_and_its_stderr_logged(runtime: Runtime) -> None:
    data, execution_id = await run_node(
        runtime, "import os\ndef main():\n    os.write(2, b'going down')\n    os.abort()"
    )
    assert rejected(data) == ("NODE_EXECUTION", "code node gave no result: it was killed by signal 6")
    logs = [e for _, e in await runtime.events_of(execution_id) if isinstance(e, NodeExecutionLogEvent)]
    assert [(log.body.severity, log.body.message) for log in logs] == [("ERROR", "going down")]
