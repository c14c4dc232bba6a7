"""ClickHouse's RowBinary format for the few column types the intake table has: the consumer builds each
batch as one bytes block (no per-value work in a driver) and ClickHouse parses it in C++.

Layouts (ClickHouse docs, "RowBinary"): String is a LEB128 length then the bytes; UUID is its two 64-bit
halves, each little-endian; DateTime64(6) an Int64 of microseconds; Nullable a 0/1 byte then the value;
Array a LEB128 count then the elements.
"""

from __future__ import annotations

import decimal
import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final
from uuid import UUID

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INT64: Final = struct.Struct("<q")
_UINT32: Final = struct.Struct("<I")
_UINT64: Final = struct.Struct("<Q")
_UINT16: Final = struct.Struct("<H")
_UUID: Final = struct.Struct("<QQ")
_LOW_64: Final = (1 << 64) - 1
# Decimal(38, 12) is an Int128 of the value times 10^12, truncated toward zero as clickhouse-connect does.
_DECIMAL_SCALE: Final = Decimal(10**12)
_DECIMAL_CONTEXT: Final = decimal.Context(prec=38)
_SHORT_LENGTHS: Final = tuple(bytes([n]) for n in range(128))
NULL: Final = b"\x01"
NOT_NULL: Final = b"\x00"


def varint(value: int) -> bytes:
    if value < 128:
        return _SHORT_LENGTHS[value]
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def string(value: bytes) -> bytes:
    return varint(len(value)) + value


def text(value: str) -> bytes:
    return string(value.encode())


def uuid(value: UUID) -> bytes:
    number = value.int
    return _UUID.pack(number >> 64, number & _LOW_64)


def nullable_uuid(value: UUID | None) -> bytes:
    return NULL if value is None else NOT_NULL + uuid(value)


def datetime64_us(value: datetime) -> bytes:
    """Exact microseconds since the epoch (a float timestamp would round near the second's end)."""
    delta = value - _EPOCH
    return _INT64.pack((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def uint8(value: int) -> bytes:
    return _SHORT_LENGTHS[value] if value < 128 else bytes([value])


def uint16(value: int) -> bytes:
    return _UINT16.pack(value)


def uint32(value: int) -> bytes:
    return _UINT32.pack(value)


def uint64(value: int) -> bytes:
    return _UINT64.pack(value)


def string_array(values: list[str]) -> bytes:
    return varint(len(values)) + b"".join(text(value) for value in values)


def decimal128_12(value: Decimal) -> bytes:
    scaled = int(_DECIMAL_CONTEXT.multiply(value, _DECIMAL_SCALE))
    return scaled.to_bytes(16, "little", signed=True)
