"""Start one child, feed it its request, read its result pipe and its bounded stdout/stderr, and kill its
whole process group when the wall-clock timeout passes (or the run is cancelled)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import marshal
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from spanline.executor.sandbox.interface import Captured, ChildOutcome, Limits
from spanline.executor.sandbox.pid_namespace import NamespaceInit

CHILD_SOURCE: Final = Path(__file__).with_name("child.py").read_text()
CHILD_ENV: Final = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}
_CHUNK: Final = 64 * 1024
_STOP_WAIT_S: Final = 5.0
log = logging.getLogger(__name__)


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


async def _stop(process: asyncio.subprocess.Process, init: NamespaceInit | None) -> None:
    """Kill whatever the run left and return only once it is gone."""
    if init is not None:
        if process.returncode is None:
            init.kill()  # the kernel kills every process of the namespace; bubblewrap then exits
        if not await init.gone(_STOP_WAIT_S):
            log.error("a code-node sandbox's init did not exit within %gs", _STOP_WAIT_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # the plain child's group, or a supervisor that hung
    await process.wait()


Command = Sequence[str] | Callable[[int], Sequence[str]]


async def run_child(
    command: Command,
    code: str,
    inputs: dict[str, Any],
    limits: Limits,
    timeout_s: float,
    *,
    as_user: int | None = None,
) -> ChildOutcome:
    """`command` ends with the interpreter's `-c`; the child's source is appended. A callable command is
    a sandbox tool that writes {"child-pid": N} (its pid namespace's init) on the fd it is given. The
    result comes back on a pipe of its own, so whatever the code prints cannot corrupt it."""
    pipes = _Pipes(supervised=callable(command))
    argv = command(pipes.info_write) if callable(command) else command
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            CHILD_SOURCE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=pipes.for_child(),
            env=CHILD_ENV,  # the child and the sandbox tool itself never see the service's environment
            cwd="/",
            start_new_session=True,
            user=as_user,
            group=as_user,
            extra_groups=[] if as_user is not None else None,
        )
    except BaseException:
        pipes.close_ours()
        raise
    finally:
        pipes.close_childs()
    result_reader, result_transport = await _pipe_reader(pipes.result_read)
    info_reader, info_transport = await _pipe_reader(pipes.info_read) if pipes.info_read >= 0 else (None, None)
    init = NamespaceInit() if info_reader is not None else None
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    request = {"code": code, "inputs": inputs, "limits": limits.rlimits(), "result_fd": pipes.result_write}
    stdin = process.stdin

    async def feed() -> None:
        if info_reader is not None and init is not None:
            init.learn((await _capture(info_reader, _CHUNK)).kept)
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
            await readers
    except TimeoutError:
        timed_out = True
    finally:
        await _stop(process, init)  # timed out, cancelled, or strays of a finished child: none outlives it
        try:  # every process is gone, so the pipes are at their ends (or about to be)
            stdout, stderr, result = await asyncio.wait_for(asyncio.shield(readers), _STOP_WAIT_S)
        except TimeoutError:
            readers.cancel()
            stdout = stderr = result = Captured(b"", 0)
        result_transport.close()
        if info_transport is not None:
            info_transport.close()
        if init is not None:
            init.close()
    return ChildOutcome(
        result=None if timed_out else _decode(result),
        stdout=stdout,
        stderr=stderr,
        returncode=process.returncode,
        timed_out=timed_out,
        result_too_large=result.dropped > 0,
    )


class _Pipes:
    """The result pipe, and the supervisor's info pipe: the child's ends are closed once it is started."""

    def __init__(self, supervised: bool) -> None:
        self.result_read, self.result_write = os.pipe()
        self.info_read, self.info_write = os.pipe() if supervised else (-1, -1)

    def for_child(self) -> tuple[int, ...]:
        return tuple(fd for fd in (self.result_write, self.info_write) if fd >= 0)

    def close_childs(self) -> None:
        for fd in self.for_child():
            os.close(fd)

    def close_ours(self) -> None:
        for fd in (self.result_read, self.info_read):
            if fd >= 0:
                os.close(fd)


def _decode(result: Captured) -> dict[str, Any] | None:
    if result.dropped or not result.kept:
        return None
    try:
        decoded = json.loads(result.kept)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) and "ok" in decoded else None
