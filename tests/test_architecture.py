"""The layers of services/spanline point one way, and no module grows past 400 lines.

core < events < bus; store (core, events); consumer and executor (core, events, bus, store; never each
other); api, the web UI in api/ui/ included (everything but cli); cli on top. The root package
(`spanline/__init__.py`, the version) counts as core. Every import counts, including ones inside
functions and under TYPE_CHECKING: each is a dependency someone has to follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGE_ROOT: Final = PROJECT_ROOT / "services" / "spanline"
MAX_MODULE_LINES: Final = 400

# What each layer may import, besides itself.
ALLOWED: Final[Mapping[str, frozenset[str]]] = {
    "core": frozenset(),
    "events": frozenset({"core"}),
    "bus": frozenset({"core", "events"}),
    "store": frozenset({"core", "events"}),
    "consumer": frozenset({"core", "events", "bus", "store"}),
    "executor": frozenset({"core", "events", "bus", "store"}),
    "api": frozenset({"core", "events", "bus", "store", "consumer", "executor"}),
    "cli": frozenset({"core", "events", "bus", "store", "consumer", "executor", "api"}),
}


def layer_of(module: str) -> str:
    """`spanline.store.runs` -> store; the root package is core; an unknown first part is its own layer
    (not in ALLOWED, so anything it imports or is imported by fails until it is placed)."""
    parts = module.split(".")
    if parts[0] != "spanline":
        raise ValueError(f"{module!r} is not part of spanline")
    return "core" if len(parts) == 1 else parts[1]


def imported_modules(module: str, source: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, imported spanline module) for every import in the source, relative ones resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "spanline":  # `from spanline import store` imports the store layer
                for alias in node.names:
                    yield node.lineno, f"spanline.{alias.name}" if _is_module(alias.name) else target
            else:
                yield node.lineno, target


def _is_module(name: str) -> bool:
    """A subpackage or module of the root package (not a name defined in its __init__)."""
    return (PACKAGE_ROOT / name).is_dir() or (PACKAGE_ROOT / f"{name}.py").is_file()


def import_violations(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """One sentence per import that points up or sideways."""
    layer = layer_of(module)
    allowed = ALLOWED.get(layer, frozenset())
    problems = []
    for line, target in imported_modules(module, source, is_package=is_package):
        if target != "spanline" and not target.startswith("spanline."):
            continue  # third-party or standard library
        target_layer = layer_of(target)
        if target_layer != layer and target_layer not in allowed:
            problems.append(f"{module}:{line} ({layer}) imports {target} ({target_layer})")
    return problems


def size_violation(module: str, source: str) -> str | None:
    lines = len(source.splitlines())
    return f"{module} has {lines} lines (at most {MAX_MODULE_LINES})" if lines > MAX_MODULE_LINES else None


def package_modules(root: Path = PACKAGE_ROOT) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def test_the_package_has_its_layers() -> None:
    """The walk sees the package (an empty walk would pass everything)."""
    layers = {layer_of(module) for module, _ in package_modules()}
    assert layers == {"core", "events", "bus", "store", "consumer", "executor", "api", "cli"}


def test_imports_point_one_way() -> None:
    problems = [
        problem
        for module, path in package_modules()
        for problem in import_violations(module, path.read_text(), is_package=path.name == "__init__.py")
    ]
    assert problems == []


def test_no_module_is_over_400_lines() -> None:
    problems = [problem for module, path in package_modules() if (problem := size_violation(module, path.read_text()))]
    assert problems == []


# The contract in code: each of its types is a class once, in events/ (the edges convert to it).
CONTRACT_TYPES: Final = frozenset(
    {
        "UsageResult",
        "ModelUsage",
        "ModelUsageCounts",
        "Cost",
        "ExecutionError",
        "ParentContext",
        "CodeResourceDefinition",
        "WorkflowDefinition",
        "ExecutionRequest",
        "WorkflowSnapshot",
    }
)


def class_definitions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for module, path in package_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(module)
    return found


def test_each_contract_type_is_defined_once_in_events() -> None:
    definitions = class_definitions()
    placed = {name: definitions.get(name, []) for name in sorted(CONTRACT_TYPES)}
    assert {name: len(modules) for name, modules in placed.items()} == dict.fromkeys(sorted(CONTRACT_TYPES), 1)
    assert all(layer_of(modules[0]) == "events" for modules in placed.values()), placed


# The check itself ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("spanline.store.workflows", "from spanline.executor.definition import WorkflowDefinition\n"),  # upward
        ("spanline.consumer.loop", "import spanline.executor.worker\n"),  # sideways
        ("spanline.executor.runner", "def f():\n    from spanline.consumer.decode import org_of\n"),  # in a function
        ("spanline.events.models", "from ..bus.interface import BusMessage\n"),  # relative, upward
        ("spanline.api.ui.pages", "from spanline.cli import app\n"),  # the UI is api, below cli
        ("spanline.core.config", "from spanline import store\n"),  # a layer imported as a package
    ],
)
def test_a_bad_import_is_caught(module: str, source: str) -> None:
    assert len(import_violations(module, source)) == 1


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("spanline.api.live.hub", "from spanline.bus.interface import BusMessage\nfrom . import frames\n"),
        ("spanline.executor.worker", "from ..store.store import Store\nimport msgspec\n"),
        ("spanline.cli", "from spanline.api.app import create_app\nfrom spanline import __version__\n"),
        ("spanline.store.workflows", "from spanline.events.workflow_definition import WorkflowDefinition\n"),
    ],
)
def test_an_allowed_import_passes(module: str, source: str) -> None:
    assert import_violations(module, source) == []


def test_relative_imports_in_a_package_init_resolve_from_the_package() -> None:
    assert list(imported_modules("spanline.api.live", "from .hub import LiveHub\n", is_package=True)) == [
        (1, "spanline.api.live.hub")
    ]
    assert import_violations("spanline.store", "from ..executor import runner\n", is_package=True) != []


def test_a_long_module_is_caught() -> None:
    assert size_violation("spanline.api.big", "x = 1\n" * (MAX_MODULE_LINES + 1)) is not None
    assert size_violation("spanline.api.small", "x = 1\n" * MAX_MODULE_LINES) is None
