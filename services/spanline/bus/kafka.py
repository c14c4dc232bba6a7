"""The bus on Apache Kafka through aiokafka: idempotent acks=all producer with linger and compression,
group consumers with manual commits, topic creation, and a reachability probe for /readyz."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from spanline.bus.interface import BusMessage, BusUnavailableError, Headers, OutgoingMessage, TopicPartition

# Big enough for thousands of ~1 KB events per request; the broker's default message.max.bytes is 1 MiB.
_MAX_BATCH_BYTES = 1_000_000
_FETCH_MAX_BYTES = 64 * 1024 * 1024


class KafkaBus:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "spanline",
        compression: str = "lz4",
        linger_ms: int = 10,
        session_timeout_ms: int = 10_000,
        fetch_min_bytes: int = 1,
        fetch_max_wait_ms: int = 500,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        # A fetch returns once it has fetch_min_bytes or waited fetch_max_wait_ms: a larger minimum means
        # fewer, fuller fetches (less event-loop work per event) for at most the wait in added latency.
        self._fetch_min_bytes = fetch_min_bytes
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._client_id = client_id
        self._compression = None if compression == "none" else compression
        self._linger_ms = linger_ms
        self._session_timeout_ms = session_timeout_ms

    async def create_topics(self, names: Sequence[str], partitions: int) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id=self._client_id)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [NewTopic(name, partitions, 1) for name in names if name not in existing]
            if missing:
                # another process may create one between the list and the create
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
        finally:
            await admin.close()

    def producer(self) -> KafkaProducer:
        return KafkaProducer(
            AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                client_id=self._client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=self._linger_ms,
                compression_type=self._compression,
                max_batch_size=_MAX_BATCH_BYTES,
            )
        )

    def consumer(self, topics: Sequence[str], *, group_id: str | None, from_beginning: bool = True) -> KafkaConsumer:
        # A reader without a group is assigned every partition; start() waits for that and pins its
        # position, so nothing produced after start() returns is missed.
        return KafkaConsumer(
            AIOKafkaConsumer(
                *topics,
                bootstrap_servers=self.bootstrap_servers,
                client_id=self._client_id,
                group_id=group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest" if from_beginning else "latest",
                fetch_max_bytes=_FETCH_MAX_BYTES,
                fetch_min_bytes=self._fetch_min_bytes,
                fetch_max_wait_ms=self._fetch_max_wait_ms,
                max_partition_fetch_bytes=_FETCH_MAX_BYTES // 8,
                session_timeout_ms=self._session_timeout_ms,
                heartbeat_interval_ms=max(1000, self._session_timeout_ms // 3),
            ),
            topics=list(topics),
            group_id=group_id,
            from_beginning=from_beginning,
        )

    async def committed_offsets(self, group_id: str, topic: str) -> dict[TopicPartition, int]:
        reader = self.offset_reader()
        try:
            return await reader.committed_offsets(group_id, topic)
        finally:
            await reader.close()

    def offset_reader(self) -> KafkaOffsetReader:
        return KafkaOffsetReader(self.bootstrap_servers, client_id=self._client_id)

    async def ping(self, timeout_s: float = 3.0) -> None:
        client = AIOKafkaClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self._client_id}-probe",
            request_timeout_ms=int(timeout_s * 1000),
        )
        try:
            await asyncio.wait_for(client.bootstrap(), timeout_s)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise BusUnavailableError(
                f"Kafka at {self.bootstrap_servers} does not answer: {exc or type(exc).__name__}"
            ) from exc
        finally:
            await client.close()

    async def close(self) -> None:
        return None


class KafkaProducer:
    """Sends without waiting per message; `flush()` waits for every pending send and raises the
    first delivery error, so a caller that flushes knows its messages are durable."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._pending: set[asyncio.Future[object]] = set()
        self._failure: BaseException | None = None
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self._producer.start()
            self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._producer.stop()

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> None:
        delivery = await self._producer.send(topic, value, key=key, headers=list(headers))
        self._pending.add(delivery)
        delivery.add_done_callback(self._settled)

    def _settled(self, delivery: asyncio.Future[object]) -> None:
        self._pending.discard(delivery)
        if not delivery.cancelled() and delivery.exception() is not None and self._failure is None:
            self._failure = delivery.exception()

    async def flush(self) -> None:
        await self._producer.flush()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        failure, self._failure = self._failure, None
        if failure is not None:
            raise BusUnavailableError(f"a Kafka send failed: {failure}") from failure

    async def send_acked(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        # Deliveries are awaited here and kept out of _pending: their failure is this caller's alone.
        try:
            deliveries = [
                await self._producer.send(topic, m.value, key=m.key, headers=list(m.headers)) for m in messages
            ]
            outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
        except (KafkaError, OSError) as exc:
            raise BusUnavailableError(f"a Kafka send failed: {exc or type(exc).__name__}") from exc
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise BusUnavailableError(
                f"{len(failures)} of {len(messages)} Kafka sends failed: {failures[0]}"
            ) from failures[0]


class KafkaConsumer:
    def __init__(
        self, consumer: AIOKafkaConsumer, *, topics: list[str], group_id: str | None, from_beginning: bool
    ) -> None:
        self._consumer = consumer
        self._topics = topics
        self._has_group = group_id is not None
        self._from_beginning = from_beginning
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        await self._consumer.start()
        self._started = True
        if not self._has_group:
            await self._assign_everything()

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._consumer.stop()

    async def _assign_everything(self, timeout_s: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while {tp.topic for tp in self._consumer.assignment()} != set(self._topics):
            if loop.time() > deadline:
                raise BusUnavailableError(f"no partitions assigned for {self._topics} after {timeout_s}s")
            await asyncio.sleep(0.05)  # assignment follows the first metadata round
        partitions = sorted(self._consumer.assignment())
        if self._from_beginning:
            await self._consumer.seek_to_beginning(*partitions)
        else:
            await self._consumer.seek_to_end(*partitions)
        for partition in partitions:
            await self._consumer.position(partition)  # resolve now, not at the first fetch

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment())

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        assigned = self._consumer.assignment()
        for tp, offset in offsets.items():
            partition = KafkaTopicPartition(tp.topic, tp.partition)
            if partition in assigned:
                self._consumer.seek(partition, offset)
                await self._consumer.position(partition)

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's end offset as of the last fetch (no request), for lag; None once a rebalance
        has taken the partition away (aiokafka asserts it is assigned)."""
        partition = KafkaTopicPartition(tp.topic, tp.partition)
        if partition not in self._consumer.assignment():
            return None
        value = self._consumer.highwater(partition)
        return None if value is None else int(value)

    async def getmany(self, *, max_records: int, timeout_ms: int) -> list[BusMessage]:
        fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return [
            BusMessage(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                record.value,
                tuple(record.headers),
                record.timestamp,
            )
            for records in fetched.values()
            for record in records
        ]

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not self._has_group:
            raise RuntimeError("a consumer without a group has nothing to commit to")
        await self._consumer.commit(
            {KafkaTopicPartition(tp.topic, tp.partition): offset for tp, offset in offsets.items()}
        )


class KafkaOffsetReader:
    """One admin client, started on first use and kept until `close()`: a caller that reads offsets on
    every request (/metrics) does not open a connection (and a broker session) per request. A call that
    fails drops the client, so the next one reconnects."""

    def __init__(self, bootstrap_servers: str, *, client_id: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()  # one start, however many callers arrive together

    async def _client(self) -> AIOKafkaAdminClient:
        async with self._lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap_servers, client_id=self._client_id)
                try:
                    await admin.start()
                except BaseException:
                    await admin.close()
                    raise
                self._admin = admin
            return self._admin

    async def committed_offsets(self, group_id: str, topic: str) -> dict[TopicPartition, int]:
        admin = await self._client()
        try:
            offsets = await admin.list_consumer_group_offsets(group_id)
        except BaseException:
            await self._drop(admin)
            raise
        return {
            TopicPartition(tp.topic, tp.partition): meta.offset
            for tp, meta in offsets.items()
            if tp.topic == topic and meta.offset >= 0
        }

    async def _drop(self, admin: AIOKafkaAdminClient) -> None:
        async with self._lock:
            if self._admin is admin:
                self._admin = None
        await admin.close()

    async def close(self) -> None:
        async with self._lock:
            admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()
