"""`conditional` nodes: the first branch whose `when` holds picks the port, else `default_port`.

`when` is `{input, op, value}` with op one of eq, ne, gt, gte, lt, lte, contains, len_gt, len_lt, truthy.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

from spanline.executor.errors import ExecutionFailure

_OPERATIONS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "contains": lambda left, right: right in left,
    "len_gt": lambda left, right: len(left) > right,
    "len_lt": lambda left, right: len(left) < right,
    "truthy": lambda left, _right: bool(left),
}


def choose_port(config: dict[str, Any], inputs: dict[str, Any]) -> str:
    for branch in config.get("branches", []):
        when = branch.get("when", {})
        name, op = when.get("input"), when.get("op", "truthy")
        if op not in _OPERATIONS:
            raise ExecutionFailure("INVALID_WORKFLOW", f"unknown conditional op {op!r}")
        if name not in inputs:
            raise ExecutionFailure("INVALID_INPUTS", f"conditional reads missing input {name!r}")
        try:
            if _OPERATIONS[op](inputs[name], when.get("value")):
                return str(branch["port"])
        except TypeError as exc:
            raise ExecutionFailure(
                "NODE_EXECUTION", f"cannot evaluate {name} {op} {when.get('value')!r}: {exc}"
            ) from exc
    default = config.get("default_port")
    if default is None:
        raise ExecutionFailure("NODE_EXECUTION", "no branch matched and there is no default_port")
    return str(default)
