"""`code` nodes: a Python `main(**inputs)` from the definition, run in a sandbox (executor/sandbox/) with a
timeout, never in the server's process. A dict return value is the node's outputs; anything else
becomes `{"output": value}`. What the code prints is the node's log (INFO for stdout, ERROR for
stderr), never its result."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, Final, Literal

from spanline.executor.errors import ExecutionFailure
from spanline.executor.sandbox.interface import Captured, ChildOutcome, CodeSandbox

DEFAULT_TIMEOUT_S: Final = 30.0
Severity = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogSink = Callable[[Severity, str], None]
_SIGNALS: Final[dict[int, str]] = {
    signal.SIGKILL.value: "it was killed (SIGKILL)",
    signal.SIGXCPU.value: "it used up its CPU time limit",
    signal.SIGSEGV.value: "it crashed (SIGSEGV)",
}


def log_text(captured: Captured) -> str:
    text = captured.kept.decode(errors="replace")
    if captured.dropped:
        text += f"\n[... {captured.dropped} more bytes truncated]"
    return text


async def run_code(
    sandbox: CodeSandbox,
    config: dict[str, Any],
    inputs: dict[str, Any],
    timeout_s: float | None,
    on_log: LogSink,
) -> dict[str, Any]:
    limit = timeout_s or DEFAULT_TIMEOUT_S
    outcome = await sandbox.run(str(config["code"]), inputs, limit)
    for severity, captured in (("INFO", outcome.stdout), ("ERROR", outcome.stderr)):
        if captured.kept or captured.dropped:
            on_log(severity, log_text(captured))  # type: ignore[arg-type]
    return _outputs(outcome, limit)


def _outputs(outcome: ChildOutcome, limit: float) -> dict[str, Any]:
    if outcome.timed_out:
        raise ExecutionFailure("NODE_TIMEOUT", f"code node exceeded its {limit:g}s timeout")
    if outcome.result_too_large:
        raise ExecutionFailure("NODE_EXECUTION", "code node's result is larger than the largest event allowed")
    result = outcome.result
    if result is None:
        raise ExecutionFailure("NODE_EXECUTION", f"code node gave no result: {_exit_reason(outcome)}")
    if not result["ok"]:
        code = str(result.get("code") or ("INVALID_CODE" if result.get("type") == "INVALID_CODE" else "NODE_EXECUTION"))
        raise ExecutionFailure(
            code, str(result["error"]), raw_data={"type": result.get("type")}, stacktrace=result.get("stacktrace")
        )
    value = result["value"]
    return value if isinstance(value, dict) else {"output": value}


def _exit_reason(outcome: ChildOutcome) -> str:
    code = outcome.returncode
    # a plain child reports a signal as -N; bubblewrap exits with 128 + N when its child was killed
    signo = -code if code is not None and code < 0 else code - 128 if code is not None and 128 < code < 160 else 0
    if signo:
        return _SIGNALS.get(signo, f"it was killed by signal {signo}")
    tail = outcome.stderr.kept.decode(errors="replace").strip()[-2000:]
    return f"it exited with status {code}" + (f": {tail}" if tail else "")
