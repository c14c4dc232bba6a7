"""One event of the live feed, shared by every subscriber: its routing fields (light decode), then once,
before any delivery, its validation and its SSE frame bytes."""

from __future__ import annotations

from uuid import UUID

from sse_starlette import ServerSentEvent

from spanline.bus.interface import BusMessage, org_of
from spanline.consumer.storable import too_deep, unstorable
from spanline.events.codec import EventDecodeError, decode_event
from spanline.events.lineage import decode_route, route_root_execution_id
from spanline.events.models import TERMINAL_WORKFLOW_EVENT_NAMES, Event


def sse_frame(offset: int, name: str, payload: bytes) -> bytes:
    """One SSE message, byte for byte what sse-starlette's `ServerSentEvent(payload, id=str(offset),
    event=name).encode()` gives (its default `\\r\\n` separator), built without its per-call overhead."""
    if b"\n" in payload or b"\r" in payload or "\n" in name or "\r" in name:
        # Line breaks (pretty-printed JSON): sse-starlette splits them into several `data:` lines; let it,
        # so the wire stays identical. (msgspec does not check UTF-8 in fields it skips: replace, never raise.)
        return ServerSentEvent(payload.decode(errors="replace"), id=str(offset), event=name).encode()
    return b"id: %d\r\nevent: %b\r\ndata: %b\r\n\r\n" % (offset, name.encode(), payload)


class LiveEvent:
    """One event of the feed, shared by every subscriber. Routing fields come from the light decode;
    `prepare()` (the hub's, before any delivery) validates once and sets `event_id`, `frame`, `ends_root`
    and (the hub's buffer) `duplicate`."""

    __slots__ = (
        "_event",
        "_id",
        "duplicate",
        "ends_root",
        "event_id",
        "frame",
        "message",
        "name",
        "offset",
        "org",
        "root",
        "span_id",
        "valid",
    )

    def __init__(self, message: BusMessage, org: str, root: UUID, name: str, span_id: UUID, event_id: UUID) -> None:
        self.message = message
        self.org = org
        self.root = root
        self.name = name
        self.span_id = span_id
        self.offset = message.offset
        self.valid: bool | None = None  # None until prepare()
        self.event_id = ""
        self.frame = b""
        self.ends_root = False
        self.duplicate = False
        self._id = event_id
        self._event: Event | None = None

    @classmethod
    def route(cls, message: BusMessage, default_org: str) -> LiveEvent | None:
        """The message's routing fields, or None when it cannot be routed (the consumer DLQs those)."""
        org = org_of(message, default_org)  # the consumer's rule, so live and stored agree
        if org is None:
            return None
        route = decode_route(message.value)
        if route is None:
            return None
        root = route_root_execution_id(route)
        if root is None:
            return None
        return cls(message, org, root, route.name, route.span_id, route.id)

    def prepare(self) -> bool:
        """Validate once and build the frame once; False for a malformed event (never to be delivered)."""
        if self.valid is None:
            self.valid = self._storable()
            if self.valid:
                self.event_id = str(self._id)  # a str, as the joiner and history compare it
                self.frame = sse_frame(self.offset, self.name, self.message.value)
                self.ends_root = self.span_id == self.root and self.name in TERMINAL_WORKFLOW_EVENT_NAMES
        return self.valid

    def _storable(self) -> bool:
        """The consumer's rule (consumer/decode.py): what it dead-letters is never delivered live either, so a
        live stream and a replay of the same execution agree."""
        if too_deep(self.message.value) is not None:
            return False
        try:
            event = decode_event(self.message.value)  # validation only: the typed event is not kept
        except EventDecodeError:
            return False
        return unstorable(event) is None

    @property
    def event(self) -> Event:
        """The typed event, decoded on first use (the execute endpoints read bodies; SSE never does)."""
        if self._event is None:
            self._event = decode_event(self.message.value)
        return self._event
