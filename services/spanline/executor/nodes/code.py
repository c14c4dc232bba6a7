"""`code` nodes: a Python `main(**inputs)` from the definition, run in a subprocess of its own with a
timeout, never in the server's process. A dict return value is the node's outputs; anything else
becomes `{"output": value}`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Final

from spanline.executor.errors import ExecutionFailure

RUNNER: Final = Path(__file__).with_name("code_runner.py")
DEFAULT_TIMEOUT_S: Final = 30.0


async def run_code(config: dict[str, Any], inputs: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
    payload = json.dumps({"code": config["code"], "inputs": inputs}).encode()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        str(RUNNER),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    limit = timeout_s or DEFAULT_TIMEOUT_S
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(payload), limit)
    except TimeoutError as exc:
        raise ExecutionFailure("NODE_TIMEOUT", f"code node exceeded its {limit:g}s timeout") from exc
    finally:
        if process.returncode is None:  # timed out or cancelled: never leave the child running
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError as exc:
        detail = stderr.decode(errors="replace")[-2000:]
        raise ExecutionFailure("NODE_EXECUTION", f"code node crashed (exit {process.returncode}): {detail}") from exc
    if not result["ok"]:
        code = str(result.get("code") or ("INVALID_CODE" if result.get("type") == "INVALID_CODE" else "NODE_EXECUTION"))
        raise ExecutionFailure(
            code, str(result["error"]), raw_data={"type": result.get("type")}, stacktrace=result.get("stacktrace")
        )
    value = result["value"]
    return value if isinstance(value, dict) else {"output": value}
