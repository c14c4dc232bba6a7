"""Hypothesis strategies that generate valid events from the models themselves (msgspec type info)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import msgspec.inspect as mi
from hypothesis import strategies as st

from spanline.events.models import KNOWN_PARENT_TYPES

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
MAX_PARENT_DEPTH = 3


def strategy_for(info: mi.Type, depth: int = 0) -> st.SearchStrategy[Any]:
    if isinstance(info, mi.Metadata):  # extra JSON-schema text only; the value type is inside
        return strategy_for(info.type, depth)
    if isinstance(info, mi.UnionType):
        options = info.types
        if depth >= MAX_PARENT_DEPTH and any(isinstance(t, mi.NoneType) for t in options):
            return st.none()  # bound the recursion of ParentContext.parent
        return st.one_of([strategy_for(t, depth) for t in options])
    if isinstance(info, mi.StructType):
        fields = {field.name: strategy_for(field.type, depth + 1) for field in info.fields}
        if info.cls.__name__ == "ParentContext":
            fields["type"] = st.sampled_from([*sorted(KNOWN_PARENT_TYPES), "SOME_FUTURE_TYPE"])
        return st.fixed_dictionaries(fields).map(lambda kwargs: info.cls(**kwargs))
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.IntType):
        return st.integers(min_value=info.ge if info.ge is not None else -(2**53), max_value=2**53)
    if isinstance(info, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
    if isinstance(info, mi.StrType):
        return st.text(max_size=12)
    if isinstance(info, mi.UUIDType):
        return st.uuids()
    if isinstance(info, mi.DateTimeType):
        return st.datetimes(timezones=st.just(UTC))
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(list(info.values))
    if isinstance(info, mi.ListType):
        return st.lists(strategy_for(info.item_type, depth), max_size=3)
    if isinstance(info, mi.DictType):
        return st.dictionaries(st.text(max_size=8), strategy_for(info.value_type, depth), max_size=3)
    if isinstance(info, mi.AnyType):
        return JSON_VALUES
    raise TypeError(f"no strategy for {info!r}")


def events() -> st.SearchStrategy[Any]:
    from spanline.events.models import Event

    return strategy_for(mi.type_info(Event))
