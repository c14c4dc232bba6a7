"""Write errors, split in two: transient (ClickHouse unreachable, slow, busy, or not migrated yet: retried with
backoff, forever) and permanent (the data itself is refused: retrying cannot help). A batch refused
permanently is bisected down to the events that are refused on their own; those go to the DLQ with the error
and the rest is written.

Only errors known to be about the data are permanent; anything else is transient, so an outage or a schema
mismatch during an upgrade never sends good events to the DLQ (it stalls and retries, as it must).
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

T = TypeVar("T")

# ClickHouse server error codes that mean "this value cannot go into this column".
PERMANENT_SERVER_CODES: Final = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        407,  # DECIMAL_OVERFLOW
    }
)
# Raised while a value is serialised into a column's binary form (by the consumer's RowBinary rows or the
# client), before anything is sent.
SERIALISATION_ERRORS: Final = (OverflowError, struct.error, UnicodeEncodeError)
_CLIENT_VALUE_ERRORS: Final = (*SERIALISATION_ERRORS, DataError)


def is_permanent(exc: BaseException) -> bool:
    """True when `exc` says the data was refused (retrying the same rows fails the same way)."""
    if isinstance(exc, OperationalError):  # connection, timeout: the server, not the data
        return False
    if isinstance(exc, _CLIENT_VALUE_ERRORS):
        return True
    if isinstance(exc, DatabaseError):
        return getattr(exc, "code", None) in PERMANENT_SERVER_CODES
    return False


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def isolate_refused(
    items: Sequence[T], attempt: Callable[[Sequence[T]], Awaitable[None]]
) -> list[tuple[T, BaseException]]:
    """Run `attempt(items)`; when it fails permanently, bisect and return each item refused on its own with
    its error (everything else has then been attempted successfully). A transient error propagates: the
    caller retries the whole call, which is harmless since `attempt` is idempotent."""
    if not items:
        return []
    try:
        await attempt(items)
    except Exception as exc:
        if not is_permanent(exc):
            raise
        if len(items) == 1:
            return [(items[0], exc)]
    else:
        return []
    middle = len(items) // 2
    return [*await isolate_refused(items[:middle], attempt), *await isolate_refused(items[middle:], attempt)]
