"""Vellum's typed values: `{id, name, type, value}` lists for inputs and outputs."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from pydantic import BaseModel


class VellumValue(BaseModel):
    id: str
    name: str
    type: str
    value: Any


def vellum_type(value: Any) -> str:
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, bool):
        return "JSON"
    if isinstance(value, int | float):
        return "NUMBER"
    if isinstance(value, list):
        return "ARRAY"
    return "JSON"


def vellum_values(owner: UUID, values: dict[str, Any]) -> list[VellumValue]:
    """Each value with a stable id (derived from its owner and name) and its Vellum type."""
    return [
        VellumValue(id=str(uuid.uuid5(owner, name)), name=name, type=vellum_type(value), value=value)
        for name, value in values.items()
    ]
