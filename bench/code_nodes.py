"""Start cost of one code-node run: before (main at b7df2b5: a plain `python -I code_runner.py`, JSON on
stdin/stdout, no isolation) and after (the shipped bubblewrap sandbox), plus the steps between them, to
show where the time goes: bubblewrap around the old child, then `-S` (no site import), then the lean
child (builtin modules only before the user's code), and the lean child without bubblewrap.

Every variant runs the same trivial node (`main(x)` returning x + 1) from the event loop, interleaved
round-robin so the shared machine's noise falls on all of them alike.
Run: `PYTHONPATH=$PWD/services:$PWD python bench/code_nodes.py --runs 200 --ballast-mb 300`;
writes bench/results/code_nodes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import machine, percentiles, write_result
from spanline.core.config import Settings
from spanline.executor.sandbox.bubblewrap import SANDBOX_ID, BubblewrapSandbox, UnsafeSandbox
from spanline.executor.sandbox.process import run_child
from spanline.executor.sandbox.selection import limits_from, open_code_sandbox

CODE = "def main(x):\n    return {'output': x + 1}"

# main's executor/nodes/code_runner.py at b7df2b5, verbatim in behaviour: the "before" child.
BEFORE_CHILD = """
import json
import sys
import traceback


class NodeError(Exception):
    def __init__(self, message, code="USER_DEFINED_ERROR"):
        super().__init__(message)
        self.code = code


def _run():
    request = json.load(sys.stdin)
    namespace = {"__name__": "spanline_code_node", "NodeError": NodeError}
    try:
        exec(compile(request["code"], "<code node>", "exec"), namespace)
        main = namespace.get("main")
        if not callable(main):
            return {"ok": False, "error": "the code defines no main() function", "type": "INVALID_CODE"}
        value = main(**request["inputs"])
        json.dumps(value)
        return {"ok": True, "value": value}
    except Exception as exc:
        return {"ok": False, "error": str(exc), "type": type(exc).__name__, "stacktrace": traceback.format_exc()}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(_run(), default=str))
"""


async def json_on_stdio(argv: list[str]) -> Any:
    """main's run_code: JSON request on stdin, JSON result on stdout."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate(json.dumps({"code": CODE, "inputs": {"x": 1}}).encode())
    return json.loads(stdout)["value"]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--ballast-mb", type=int, default=0, help="grow this process first, as big as an executor with chDB"
    )
    parser.add_argument("--name", default="code_nodes", help="results file name in bench/results/")
    args = parser.parse_args()
    ballast = bytearray(args.ballast_mb * 1024 * 1024)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page, so a fork has them to copy
    settings = Settings()
    sandbox = await open_code_sandbox(settings)
    assert isinstance(sandbox, BubblewrapSandbox), f"bubblewrap is not usable here: {sandbox}"
    limits = limits_from(settings)
    interpreter = sandbox.interpreter
    wrap = sandbox.argv[:-4]  # setpriv (when root) and bubblewrap, without the interpreter and its flags
    with tempfile.TemporaryDirectory() as scratch:
        before_child = Path(scratch) / "code_runner.py"
        before_child.write_text(BEFORE_CHILD)
        unsafe = UnsafeSandbox(interpreter, limits)

        async def after() -> Any:
            return (await sandbox.run(CODE, {"x": 1}, 30)).result

        bwrap_only = wrap[4:] if wrap[0].endswith("setpriv") else wrap

        async def uid_switched_by_popen() -> Any:  # what the setpriv prefix avoids: a fork of this process
            argv = [*bwrap_only, str(interpreter), "-I", "-S", "-c"]
            return (await run_child(argv, CODE, {"x": 1}, limits, 30, as_user=SANDBOX_ID)).result

        async def lean_child_without_bwrap() -> Any:
            return (await unsafe.run(CODE, {"x": 1}, 30)).result

        variants: dict[str, Callable[[], Awaitable[Any]]] = {
            "before: python -I code_runner.py (no isolation)": lambda: json_on_stdio(
                [sys.executable, "-I", str(before_child)]
            ),
            "bwrap + old child, python -I": lambda: json_on_stdio([*wrap, str(interpreter), "-I", "-c", BEFORE_CHILD]),
            "bwrap + old child, python -I -S": lambda: json_on_stdio(
                [*wrap, str(interpreter), "-I", "-S", "-c", BEFORE_CHILD]
            ),
            "after: bwrap + lean child, python -I -S (shipped)": after,
            "after, but the uid switched by Popen(user=) (fork, no vfork)": uid_switched_by_popen,
            "lean child, python -I -S, no bwrap (SPANLINE_CODE_NODES=unsafe)": lean_child_without_bwrap,
        }
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for name, run in variants.items():  # warm-up, and a check that each variant really works
            assert await run() in ({"output": 2}, {"ok": True, "value": {"output": 2}}), name
        for _ in range(args.runs):
            for name, run in variants.items():
                started = time.perf_counter()
                await run()
                samples[name].append((time.perf_counter() - started) * 1000)
    result = {
        "machine": machine(),
        "runs_per_variant": args.runs,
        "code": CODE,
        "sandbox_interpreter": str(interpreter),
        "service_interpreter": sys.executable,
        "sandbox_argv": wrap,
        "ballast_mb": args.ballast_mb,
        "start_ms": {name: percentiles(values) for name, values in samples.items()},
    }
    path = write_result(args.name, result)
    for name, stats in result["start_ms"].items():  # type: ignore[attr-defined]
        print(f"{name:70s} p50 {stats['p50']:7.1f}  p99 {stats['p99']:7.1f} ms")
    print(path)


if __name__ == "__main__":
    asyncio.run(main())
