"""The bus contract shared by the Kafka and the in-process implementations.

Semantics both keep: a topic has partitions; a message's key picks its partition (murmur2, as Kafka's
default partitioner), so one key stays in order; a consumer group splits the partitions among its
members and resumes from the offsets it committed; nothing uncommitted is skipped on restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

ORG_HEADER: Final = "spanline-org"

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class BusMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int

    def header(self, name: str) -> bytes | None:
        for header_name, value in self.headers:
            if header_name == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    value: bytes
    key: bytes | None = None
    headers: Headers = ()


def org_of(message: BusMessage, default_org: str) -> str | None:
    """The organization a message belongs to (one rule for the consumer and the live feed, so stored and
    live agree): no header → the default; undecodable or blank → None."""
    raw = message.header(ORG_HEADER)
    if raw is None:
        return default_org
    try:
        org = raw.decode()
    except UnicodeDecodeError:
        return None
    return org if org.strip() else None


class BusUnavailableError(RuntimeError):
    """The bus cannot be reached (broker down, not started)."""


class BusProducer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> None:
        """Queue a message; it is durable once `flush()` returns."""

    async def flush(self) -> None: ...

    async def send_acked(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        """Send and return once the broker acknowledged every one of these messages; raise
        BusUnavailableError if any was not. Only this call sees its failures (not another's flush)."""


class BusConsumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, *, max_records: int, timeout_ms: int) -> list[BusMessage]:
        """Up to max_records messages, in offset order within each partition; [] on timeout."""

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, per partition, the offset of the next message to read."""

    def assignment(self) -> frozenset[TopicPartition]: ...

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Move the read position of assigned partitions (readers without a group)."""

    def highwater(self, tp: TopicPartition) -> int | None:
        """The offset after the partition's last message as last seen (None if unknown), for lag."""


class OffsetReader(Protocol):
    """Reads consumer groups' committed offsets over one connection kept for the reader's life (for a
    caller that asks again and again, like /metrics)."""

    async def committed_offsets(self, group_id: str, topic: str) -> dict[TopicPartition, int]:
        """What a consumer group has committed on a topic's partitions (none committed: absent)."""

    async def close(self) -> None: ...


class Bus(Protocol):
    async def create_topics(self, names: Sequence[str], partitions: int) -> None:
        """Create the topics that do not exist yet; existing ones are left as they are."""

    def producer(self) -> BusProducer: ...

    def consumer(self, topics: Sequence[str], *, group_id: str | None, from_beginning: bool = True) -> BusConsumer:
        """A group member (group_id) or, with group_id None, a reader of every partition that commits
        nothing and starts at the beginning or at the end (from_beginning=False: live tail)."""

    async def committed_offsets(self, group_id: str, topic: str) -> dict[TopicPartition, int]:
        """What a consumer group has committed on a topic's partitions (none committed: absent); one
        connection per call: a caller that asks often keeps an `offset_reader()`."""

    def offset_reader(self) -> OffsetReader: ...

    async def ping(self, timeout_s: float = 3.0) -> None:
        """Return when the bus answers; raise BusUnavailableError with the reason when it does not."""

    async def close(self) -> None: ...
