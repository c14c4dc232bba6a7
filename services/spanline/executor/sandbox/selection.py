"""Which sandbox code nodes get, decided once at start: bubblewrap after a startup probe passes; the
unsafe plain child only when the operator set SPANLINE_CODE_NODES=unsafe (logged loudly); otherwise a
refusal whose error names the opt-out. Never silently unsafe."""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Final

from spanline.core.config import Settings
from spanline.executor.errors import ExecutionFailure
from spanline.executor.sandbox.bubblewrap import SANDBOX_ID, BubblewrapSandbox, UnsafeSandbox, choose_interpreter
from spanline.executor.sandbox.interface import ChildOutcome, CodeSandbox, Limits

log = logging.getLogger(__name__)
OPT_OUT: Final = "SPANLINE_CODE_NODES=unsafe"
_PROBE_CODE: Final = "import os\ndef main(x):\n    return {'uid': os.getuid(), 'x': x}"
_PROBE_TIMEOUT_S: Final = 10.0


class RefusingSandbox:
    """Code nodes are off: every run is rejected with the reason and how to turn them on."""

    name = "off"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def run(self, code: str, inputs: dict[str, Any], timeout_s: float) -> ChildOutcome:
        raise ExecutionFailure("NODE_EXECUTION", self.reason)


def limits_from(settings: Settings) -> Limits:
    return Limits(
        address_space_bytes=settings.code_memory_bytes,
        cpu_seconds=settings.code_cpu_seconds,
        processes=settings.code_max_processes,
        open_files=settings.code_max_open_files,
        file_bytes=settings.code_max_file_bytes,
        tmp_bytes=settings.code_tmp_bytes,
        output_bytes=settings.code_output_bytes,
        result_bytes=settings.max_event_bytes,
    )


def _off(why: str) -> RefusingSandbox:
    return RefusingSandbox(
        f"code nodes are off: {why}. Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) to run "
        f"them isolated, or set {OPT_OUT} to run them without isolation (trusted code only)"
    )


async def _probe(sandbox: CodeSandbox) -> str | None:
    """None when a trivial node runs correctly in the sandbox as the unprivileged uid; else what went wrong."""
    try:
        outcome = await sandbox.run(_PROBE_CODE, {"x": 1}, _PROBE_TIMEOUT_S)
    except OSError as exc:
        return f"bubblewrap could not start ({exc})"
    if outcome.result == {"ok": True, "value": {"uid": SANDBOX_ID, "x": 1}}:
        return None
    detail = outcome.stderr.kept.decode(errors="replace").strip()[-500:]
    return f"the bubblewrap startup probe failed (exit {outcome.returncode}): {detail or 'no output'}"


async def open_code_sandbox(settings: Settings) -> CodeSandbox:
    limits = limits_from(settings)
    as_user = SANDBOX_ID if os.geteuid() == 0 else None  # rlimits on processes do not bind root's uid
    if settings.code_nodes == "unsafe":
        interpreter = choose_interpreter(settings.code_python, None)
        if interpreter is None:
            return RefusingSandbox(f"code nodes are off: no Python interpreter at {settings.code_python}")
        log.warning(
            "!!! %s: code nodes run WITHOUT ISOLATION (host filesystem, network and uid); "
            "any API-key holder can run code as this service !!!",
            OPT_OUT,
        )
        return UnsafeSandbox(interpreter, limits)
    bwrap = shutil.which(settings.code_bwrap)
    if bwrap is None:
        sandbox: CodeSandbox = _off(f"bubblewrap ({settings.code_bwrap}) is not installed")
    elif (interpreter := choose_interpreter(settings.code_python, as_user)) is None:
        sandbox = _off("no Python interpreter readable by the sandbox's unprivileged user (set SPANLINE_CODE_PYTHON)")
    else:
        candidate = BubblewrapSandbox(bwrap, interpreter, limits, as_user)
        failure = await _probe(candidate)
        sandbox = candidate if failure is None else _off(failure)
    if isinstance(sandbox, RefusingSandbox):
        log.error("%s", sandbox.reason)
    else:
        log.info("code nodes run in bubblewrap (%s)", bwrap)
    return sandbox
