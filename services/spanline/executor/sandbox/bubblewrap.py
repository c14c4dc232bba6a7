"""Code nodes in bubblewrap: own user, pid, network, ipc, uts and mount namespaces; a root filesystem of
read-only system directories, the interpreter and a private size-limited /tmp (no data directory, no
service files, no other run's scratch); an unprivileged uid; no capabilities; the user's code runs with
rlimits set by `child.py` and is killed with its whole namespace at the wall-clock timeout."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any, Final

from spanline.executor.sandbox.interface import ChildOutcome, Limits
from spanline.executor.sandbox.process import CHILD_ENV, run_child

SANDBOX_ID: Final = 65534  # nobody/nogroup, inside the sandbox and (when the executor is root) outside
_SYSTEM_DIRS: Final = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")


def _readable_by_others(path: Path) -> bool:
    """The sandbox's uid is nobody's: the interpreter must be reachable through world-searchable dirs."""
    try:
        resolved = path.resolve(strict=True)
    except OSError:
        return False
    for part in (resolved, *resolved.parents):
        mode = part.stat().st_mode
        needed = stat.S_IXOTH | (stat.S_IROTH if part == resolved else 0)
        if mode & needed != needed:
            return False
    return True


def interpreter_candidates() -> list[Path]:
    """The service's own base interpreter first, then the system's (code nodes get the stdlib only)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return [Path(sys.base_prefix) / "bin" / version, Path("/usr/local/bin/python3"), Path("/usr/bin/python3")]


def choose_interpreter(configured: Path | None, as_user: int | None) -> Path | None:
    candidates = [configured] if configured is not None else interpreter_candidates()
    for candidate in candidates:
        if candidate.is_file() and (as_user is None or _readable_by_others(candidate)):
            return candidate.resolve()
    return None


def _prefix_of(interpreter: Path) -> Path:
    return interpreter.parent.parent  # <prefix>/bin/pythonX.Y


def _system_mounts() -> list[str]:
    """/usr read-only, and /bin, /lib... as the host has them (symlinks into /usr on merged-/usr)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for directory in _SYSTEM_DIRS:
        path = Path(directory)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), directory]
        elif path.is_dir():
            args += ["--ro-bind", directory, directory]
    return args


def bwrap_argv(bwrap: str, interpreter: Path, limits: Limits) -> list[str]:
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(SANDBOX_ID),
        "--gid",
        str(SANDBOX_ID),
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
    ]
    for name, value in CHILD_ENV.items():
        args += ["--setenv", name, value]
    args += _system_mounts()
    prefix = _prefix_of(interpreter)
    if not prefix.is_relative_to("/usr"):
        args += ["--ro-bind", str(prefix), str(prefix)]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    args += ["--chdir", "/tmp", "--hostname", "sandbox"]
    return [*args, str(interpreter), "-I", "-S", "-c"]


class BubblewrapSandbox:
    name = "bubblewrap"

    def __init__(self, bwrap: str, interpreter: Path, limits: Limits, as_user: int | None) -> None:
        self.interpreter = interpreter
        self._argv = bwrap_argv(bwrap, interpreter, limits)
        self._limits = limits
        self._as_user = as_user
        setpriv = shutil.which("setpriv")
        if as_user is not None and setpriv is not None:
            # Switching uid in the exec'd setpriv rather than in Popen keeps Popen on vfork: a fork of the
            # executor's process (hundreds of MB with chDB) costs tens of ms (bench/README.md).
            ids = [f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups"]
            self._argv = [setpriv, *ids, *self._argv]
            self._as_user = None

    @property
    def argv(self) -> list[str]:
        """The command up to the interpreter's `-c` (the child's source follows it)."""
        return list(self._argv)

    async def run(self, code: str, inputs: dict[str, Any], timeout_s: float) -> ChildOutcome:
        def command(info_fd: int) -> list[str]:  # bubblewrap reports its namespace's init on info_fd
            return [*self._argv[:-4], "--info-fd", str(info_fd), *self._argv[-4:]]

        return await run_child(command, code, inputs, self._limits, timeout_s, as_user=self._as_user)


class UnsafeSandbox:
    """SPANLINE_CODE_NODES=unsafe: a plain child process with an empty environment, its own process group
    and the same rlimits, but the host's filesystem, network and uid. For trusted code only."""

    name = "unsafe"

    def __init__(self, interpreter: Path, limits: Limits) -> None:
        self._argv = [str(interpreter), "-I", "-S", "-c"]
        self._limits = limits

    async def run(self, code: str, inputs: dict[str, Any], timeout_s: float) -> ChildOutcome:
        return await run_child(self._argv, code, inputs, self._limits, timeout_s)
