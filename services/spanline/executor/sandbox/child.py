"""Runs inside the sandbox (started as `python -I -S -c <this file's text>`, stdlib only): reads
{code, inputs, limits, result_fd} (marshal) on stdin, sets its resource limits, calls `main(**inputs)` and
writes {ok, value} or {ok: false, error, type, code?, stacktrace} as JSON on the result pipe; stdout and
stderr are the code's own (they become log events).

Start cost matters (one interpreter per run): only builtin modules are imported before the user's code
(`marshal`, the C half of `json`, `resource`); `json` itself would pull in `re` and `enum` (bench/README.md).

The code can `raise NodeError("message")` (available without an import) to reject the node with
USER_DEFINED_ERROR, or `NodeError("message", code="SOME_CODE")` for a code of its own."""

from __future__ import annotations

import marshal
import os
import resource
import sys

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing would cost more than this whole file
if TYPE_CHECKING:
    from collections.abc import Callable

    Encoder = Callable[[object], str]

STARTED_AS = os.getpid()


class NodeError(Exception):
    def __init__(self, message: str, code: str = "USER_DEFINED_ERROR") -> None:
        super().__init__(message)
        self.code = code


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_encoder() -> Encoder:
    try:
        import _json

        encode = _json.make_encoder({}, _not_json, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
        return lambda value: "".join(encode(value, 0))  # what json.dumps does with the C encoder
    except (ImportError, AttributeError):  # an interpreter without the C accelerator
        import json

        return lambda value: json.dumps(value, default=_not_json)


def _limit(limits: dict[str, int]) -> None:
    """Soft = hard, so the code cannot raise them again; CPU gets a hard limit one second later
    (SIGXCPU first, then SIGKILL)."""
    for name, value in limits.items():
        hard = value + 1 if name == "RLIMIT_CPU" else value
        resource.setrlimit(getattr(resource, name), (value, hard))


def _failure(exc: BaseException, kind: str, code: str | None = None) -> dict[str, object]:
    import traceback  # only on failures: it costs more to import than the rest of this file

    failure: dict[str, object] = {
        "ok": False,
        "error": str(exc) or kind,
        "type": kind,
        "stacktrace": traceback.format_exc(),
    }
    if code is not None:
        failure["code"] = code
    return failure


def _run(request: dict[str, object], encode: Encoder) -> str:
    namespace: dict[str, object] = {"__name__": "spanline_code_node", "NodeError": NodeError}
    inputs = request["inputs"]
    assert isinstance(inputs, dict)
    try:
        exec(compile(str(request["code"]), "<code node>", "exec"), namespace)
        main = namespace.get("main")
        if not callable(main):
            return encode({"ok": False, "error": "the code defines no main() function", "type": "INVALID_CODE"})
        return encode({"ok": True, "value": main(**inputs)})  # outputs must be JSON
    except NodeError as exc:
        return encode(_failure(exc, "NodeError", exc.code))
    except (Exception, SystemExit) as exc:  # the user's exception, reported back verbatim
        return encode(_failure(exc, type(exc).__name__))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _main() -> None:
    request = marshal.loads(sys.stdin.buffer.read())
    result_fd = int(request["result_fd"])
    _limit(request["limits"])
    result = _run(request, _json_encoder())
    if os.getpid() != STARTED_AS:  # a process the code forked came back here: it has no result to give
        os._exit(0)
    sys.stdout.flush()
    _write_all(result_fd, result.encode())
    os.close(result_fd)


if __name__ == "__main__":
    _main()
