"""`template` nodes and the prompt of `model` nodes: Jinja2 in a sandbox (templates come from users)."""

from __future__ import annotations

from typing import Any, Final

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from spanline.executor.errors import ExecutionFailure

_environment: Final = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def render(template: str, variables: dict[str, Any]) -> str:
    try:
        return _environment.from_string(template).render(**variables)
    except TemplateError as exc:
        raise ExecutionFailure("INVALID_TEMPLATE", f"template error: {exc}") from exc


async def run_template(config: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    return {"output": render(str(config["template"]), inputs)}
