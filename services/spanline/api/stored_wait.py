"""Read-your-writes for execute-workflow: wait until the consumer group has committed past the run's
terminal event. The consumer commits a batch only after its spans, events and the derived run row are
written, so from then on status, detail, lists and runs answer with the whole run."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from spanline.bus.interface import BusMessage, OffsetReader, TopicPartition

log = logging.getLogger(__name__)

_POLL_S: Final = 0.02  # committed offsets are not pushed: ask again this often until the deadline


async def wait_until_stored(offsets: OffsetReader, group_id: str, message: BusMessage, timeout_s: float) -> bool:
    """True once `group_id` has committed beyond `message`; False when `timeout_s` passed first (the
    caller answers anyway: the run ended, only the reads may lag)."""
    if timeout_s <= 0:
        return False
    tp = TopicPartition(message.topic, message.partition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            committed = await offsets.committed_offsets(group_id, message.topic)
        except Exception as exc:
            log.warning("cannot read %s's committed offsets (%s); answering without waiting", group_id, exc)
            return False
        if committed.get(tp, 0) > message.offset:
            return True
        if loop.time() >= deadline:
            log.warning("consumer group %s did not store %s@%d in %.1fs", group_id, tp, message.offset, timeout_s)
            return False
        await asyncio.sleep(_POLL_S)
