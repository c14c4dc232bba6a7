"""Write events into the store through the consumer's own path (decode → rows → writer), without a bus."""

from __future__ import annotations

from collections.abc import Sequence

from spanline.bus.interface import ORG_HEADER, BusMessage
from spanline.consumer.decode import AcceptedEvent, decode_message
from spanline.consumer.rows import build_rows
from spanline.consumer.writer import EventBatchWriter
from spanline.store.store import Store


async def write_messages(store: Store, messages: Sequence[BusMessage], *, batch_size: int, default_org: str) -> None:
    """Messages in batches through decode → rows → writer; every one must be a valid event."""
    writer = EventBatchWriter(store)
    for start in range(0, len(messages), batch_size):
        batch = messages[start : start + batch_size]
        decoded = [decode_message(message, default_org=default_org, max_bytes=1 << 20) for message in batch]
        accepted = [item for item in decoded if isinstance(item, AcceptedEvent)]
        assert len(accepted) == len(batch), "every test event must be valid"
        await writer.write(build_rows(accepted))


async def ingest(store: Store, payloads: list[bytes], *, org: str, key: bytes, batch_size: int = 10_000) -> None:
    """All payloads as one execution's messages on partition 0, offsets in list order."""
    headers = ((ORG_HEADER, org.encode()),)
    messages = [
        BusMessage("spanline.events", 0, offset, key, payload, headers, 0) for offset, payload in enumerate(payloads)
    ]
    await write_messages(store, messages, batch_size=batch_size, default_org="default")
