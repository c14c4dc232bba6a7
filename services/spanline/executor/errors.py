"""The error a node or workflow is rejected with: a SPEC §1 error code and a message for people."""

from __future__ import annotations

from typing import Any


class ExecutionFailure(Exception):
    def __init__(
        self, code: str, message: str, *, raw_data: dict[str, Any] | None = None, stacktrace: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.raw_data = raw_data
        self.stacktrace = stacktrace
