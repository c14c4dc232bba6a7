"""Write events into the store through the consumer's own path (decode → rows → writer), without a bus."""

from __future__ import annotations

from spanline.bus.interface import ORG_HEADER, BusMessage
from spanline.consumer.decode import AcceptedEvent, decode_message
from spanline.consumer.rows import build_rows
from spanline.consumer.writer import EventBatchWriter
from spanline.store.store import Store


async def ingest(store: Store, payloads: list[bytes], *, org: str, key: bytes, batch_size: int = 10_000) -> None:
    """All payloads as one execution's messages on partition 0, offsets in list order."""
    writer = EventBatchWriter(store)
    for start in range(0, len(payloads), batch_size):
        messages = [
            BusMessage("spanline.events", 0, start + index, key, payload, ((ORG_HEADER, org.encode()),), 0)
            for index, payload in enumerate(payloads[start : start + batch_size])
        ]
        decoded = [decode_message(message, default_org="default", max_bytes=1 << 20) for message in messages]
        accepted = [item for item in decoded if isinstance(item, AcceptedEvent)]
        assert len(accepted) == len(messages), "every test event must be valid"
        await writer.write(build_rows(accepted))
