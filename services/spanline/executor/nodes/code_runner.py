"""Runs inside the subprocess of a `code` node: reads {code, inputs} as JSON on stdin, calls
`main(**inputs)`, writes {ok, value} or {ok: false, error, type, code?, stacktrace} as JSON on stdout.

The code can `raise NodeError("message")` (available without an import) to reject the node with
USER_DEFINED_ERROR, or `NodeError("message", code="SOME_CODE")` for a code of its own."""

import json
import sys
import traceback


class NodeError(Exception):
    def __init__(self, message: str, code: str = "USER_DEFINED_ERROR") -> None:
        super().__init__(message)
        self.code = code


def _run() -> dict[str, object]:
    request = json.load(sys.stdin)
    namespace: dict[str, object] = {"__name__": "spanline_code_node", "NodeError": NodeError}
    try:
        exec(compile(request["code"], "<code node>", "exec"), namespace)
        main = namespace.get("main")
        if not callable(main):
            return {"ok": False, "error": "the code defines no main() function", "type": "INVALID_CODE"}
        value = main(**request["inputs"])
        json.dumps(value)  # outputs must be JSON
        return {"ok": True, "value": value}
    except NodeError as exc:
        return {
            "ok": False,
            "error": str(exc),
            "type": "NodeError",
            "code": exc.code,
            "stacktrace": traceback.format_exc(),
        }
    except Exception as exc:  # the user's exception, reported back verbatim
        return {"ok": False, "error": str(exc), "type": type(exc).__name__, "stacktrace": traceback.format_exc()}


if __name__ == "__main__":
    result = _run()
    sys.stdout.write(json.dumps(result, default=str))
