"""bytes ⇄ Event on the hot path (msgspec: one C pass that parses and validates; see bench/codec.py)."""

from __future__ import annotations

from typing import Final

import msgspec

from spanline.events.models import Event

_decoder: Final[msgspec.json.Decoder[Event]] = msgspec.json.Decoder(Event)
_encoder: Final = msgspec.json.Encoder()


class EventDecodeError(ValueError):
    """The bytes are not a valid event; `reason` is a short machine-friendly category."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def decode_event(data: bytes | bytearray | memoryview, max_bytes: int | None = None) -> Event:
    """Decode and validate one event, or raise EventDecodeError saying why not."""
    if max_bytes is not None and len(data) > max_bytes:
        raise EventDecodeError("too_large", f"event is {len(data)} bytes, the limit is {max_bytes}")
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason = "unknown_name" if "Invalid value" in text and "`$.name`" in text else "schema"
        return _raise(reason, text)
    except msgspec.DecodeError as exc:
        return _raise("not_json", str(exc))
    except RecursionError:  # nesting deeper than the decoder's stack allows: refused, never raised through
        return _raise("too_deep", "JSON nesting deeper than the decoder allows")


def _raise(reason: str, message: str) -> Event:
    raise EventDecodeError(reason, message)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def encode_events_ndjson(events: list[Event]) -> bytes:
    """Newline-delimited JSON, the framing of Vellum's execute-stream and of examples/events."""
    return b"".join(_encoder.encode(event) + b"\n" for event in events)
