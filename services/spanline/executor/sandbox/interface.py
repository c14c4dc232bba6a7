"""The one interface code nodes use: run code with limits -> result and logs. A sandbox is a way of
starting the child (`child.py`); bubblewrap is the real one, the others are the explicit opt-out and
the refusal when neither is available."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-run resource limits, set in the child before the user's code runs (rlimits, soft = hard)."""

    address_space_bytes: int
    cpu_seconds: int
    processes: int
    open_files: int
    file_bytes: int
    tmp_bytes: int  # size of the private /tmp (bubblewrap only)
    output_bytes: int  # stdout and stderr are each kept up to this much
    result_bytes: int  # a larger result is refused

    def rlimits(self) -> dict[str, int]:
        return {
            "RLIMIT_AS": self.address_space_bytes,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_NPROC": self.processes,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_CORE": 0,  # a crash leaves no core file behind
        }


@dataclass(frozen=True, slots=True)
class Captured:
    """One bounded output stream: the first `kept` bytes and how many more were dropped."""

    kept: bytes
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    result: dict[str, Any] | None  # what the child wrote on its result channel, if anything valid
    stdout: Captured
    stderr: Captured
    returncode: int | None  # negative: killed by that signal
    timed_out: bool
    result_too_large: bool = False


class CodeSandbox(Protocol):
    name: str  # for logs and errors: "bubblewrap", "unsafe", "off"

    async def run(self, code: str, inputs: dict[str, Any], timeout_s: float) -> ChildOutcome:
        """Run `main(**inputs)` from `code` in a fresh child; never leave a process behind."""
        ...
