"""A monitoring-events body → validated events: one §1 event or a JSON list of them, each validated by
the codec the consumer uses, so what the API accepts the consumer stores."""

from __future__ import annotations

from typing import Final

import msgspec
from fastapi import HTTPException, status

from spanline.api.intake.publish import IntakeEvent
from spanline.events.codec import EventDecodeError, decode_event
from spanline.events.lineage import root_execution_id

_list_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])


def _items(body: bytes) -> list[bytes]:
    if not body.lstrip().startswith(b"["):
        return [body]
    try:
        return [bytes(raw) for raw in _list_decoder.decode(body)]
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"the body is not a JSON list of events: {exc}") from exc


def parse_events(body: bytes, max_event_bytes: int) -> list[IntakeEvent]:
    """Every event of the body, or the first problem by index: 413 for an event over the size limit,
    400 for an invalid one (nothing of the request is published then)."""
    accepted: list[IntakeEvent] = []
    for index, payload in enumerate(_items(body)):
        try:
            event = decode_event(payload, max_event_bytes)
        except EventDecodeError as exc:
            code = status.HTTP_413_CONTENT_TOO_LARGE if exc.reason == "too_large" else 400
            raise HTTPException(code, f"event {index}: {exc.reason}: {exc.message}") from exc
        root = root_execution_id(event)
        if root is None:
            raise HTTPException(400, f"event {index}: no_root: a node event with no WORKFLOW context above it")
        accepted.append(IntakeEvent(payload, root))
    return accepted
