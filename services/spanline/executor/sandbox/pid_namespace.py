"""The init of a sandbox's pid namespace, watched through a pidfd. bubblewrap reports its host pid on an
info fd and exits as soon as its init reports the child's status, possibly before the init has finished
killing and reaping the rest of the namespace; a run is over only when that init is gone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal


class NamespaceInit:
    def __init__(self) -> None:
        self._pidfd: int | None = None

    def learn(self, info: bytes) -> None:
        """`info` is what bubblewrap wrote on --info-fd: {"child-pid": N, ...}."""
        try:
            pid = int(json.loads(info)["child-pid"])
            self._pidfd = os.pidfd_open(pid)
        except (ValueError, KeyError, TypeError, ProcessLookupError):
            self._pidfd = None  # no report, or the init has already gone

    def kill(self) -> bool:
        """SIGKILL the init (the kernel then kills its whole namespace); False when it is not known."""
        if self._pidfd is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        return True

    async def gone(self, timeout_s: float) -> bool:
        """Wait until the init has exited (its pidfd turns readable once every process of it is gone)."""
        if self._pidfd is None:
            return True
        pidfd = self._pidfd
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, readable)
        try:
            await asyncio.wait_for(exited, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(pidfd)

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
