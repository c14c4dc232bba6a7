"""Start one child, feed it its request, read its result pipe and its bounded stdout/stderr, and kill its
whole process group when the wall-clock timeout passes (or the run is cancelled)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import marshal
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from spanline.executor.sandbox.interface import Captured, ChildOutcome, Limits

CHILD_SOURCE: Final = Path(__file__).with_name("child.py").read_text()
CHILD_ENV: Final = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}
_CHUNK: Final = 64 * 1024
_DRAIN_AFTER_KILL_S: Final = 5.0


async def _capture(reader: asyncio.StreamReader, limit: int) -> Captured:
    """Keep the first `limit` bytes; read (and count) the rest so the child never blocks on a full pipe."""
    kept = bytearray()
    dropped = 0
    while chunk := await reader.read(_CHUNK):
        room = max(limit - len(kept), 0)
        kept += chunk[:room]
        dropped += len(chunk) - min(room, len(chunk))
    return Captured(bytes(kept), dropped)


async def _pipe_reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_CHUNK)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader, transport


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_child(
    argv: Sequence[str],
    code: str,
    inputs: dict[str, Any],
    limits: Limits,
    timeout_s: float,
    *,
    as_user: int | None = None,
) -> ChildOutcome:
    """`argv` ends with the interpreter's `-c`; the child's source is appended. The result comes back on
    a pipe of its own, so whatever the code prints cannot corrupt it."""
    result_read, result_write = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            CHILD_SOURCE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(result_write,),
            env=CHILD_ENV,  # the child and the sandbox tool itself never see the service's environment
            cwd="/",
            start_new_session=True,
            user=as_user,
            group=as_user,
            extra_groups=[] if as_user is not None else None,
        )
    except BaseException:
        os.close(result_read)
        raise
    finally:
        os.close(result_write)
    result_reader, result_transport = await _pipe_reader(result_read)
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    request = {"code": code, "inputs": inputs, "limits": limits.rlimits(), "result_fd": result_write}
    stdin = process.stdin

    async def feed() -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(marshal.dumps(request))  # trusted direction; the child has no json yet
            await stdin.drain()
            stdin.close()

    readers = asyncio.gather(
        _capture(process.stdout, limits.output_bytes),
        _capture(process.stderr, limits.output_bytes),
        _capture(result_reader, limits.result_bytes),
    )
    timed_out = False
    try:
        async with asyncio.timeout(timeout_s):
            await feed()
            await process.wait()
            stdout, stderr, result = await readers
    except TimeoutError:
        timed_out = True
    finally:
        _kill_group(process.pid)  # timed out, cancelled, or strays of a finished child: none outlives its run
        await process.wait()
        if not readers.done():
            try:
                stdout, stderr, result = await asyncio.wait_for(asyncio.shield(readers), _DRAIN_AFTER_KILL_S)
            except TimeoutError:
                readers.cancel()
                stdout = stderr = result = Captured(b"", 0)
        result_transport.close()
    return ChildOutcome(
        result=None if timed_out else _decode(result),
        stdout=stdout,
        stderr=stderr,
        returncode=process.returncode,
        timed_out=timed_out,
        result_too_large=result.dropped > 0,
    )


def _decode(result: Captured) -> dict[str, Any] | None:
    if result.dropped or not result.kept:
        return None
    try:
        decoded = json.loads(result.kept)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) and "ok" in decoded else None
