"""Live latency: from an event's emission (its `timestamp`) to its arrival on SSE clients and to its
visibility in the detail API, at a steady emission rate, with N concurrent subscribers on one execution.

One process runs what `spanline dev` runs (API on a real uvicorn server, consumer, chDB) plus a paced emitter
that publishes the executor's event shapes (workflow initiated, then node initiated/fulfilled pairs with model
usage) for one long-running execution, each stamped with the wall clock just before it is sent. The bus is a
real Kafka broker (tests/kafka/broker.py) unless --memory-bus. The SSE clients run in a second process
(`python bench/live.py client ...`, started by this script) so their parsing does not share the API's event
loop; they read raw sockets, and every --sample-every'th client parses every event's timestamp (all clients
count what they receive). The client process also probes freshness: for one node span in 500 it polls
`GET .../detail?prev_span_id=<span>&span_limit=1` every 100 ms until it answers 200 (the span is readable
in the store) and records emission → visible. Beside the figures, the same run measures the floor: the
p50/p99 of GET /healthz from the client process while the load runs, and the emitter's own lag.

    # issue 6 (2): freshness at 1,000 events/s, one subscriber
    SPANLINE_KAFKA_JARS=/work/main/.cache/kafka-jars PYTHONPATH=$PWD/services:$PWD \
        python bench/live.py --rate 1000 --subscribers 1 --seconds 30 --name live_freshness
    # issue 6 (5): fan-out, 1,000 subscribers at 200 events/s
    SPANLINE_KAFKA_JARS=/work/main/.cache/kafka-jars PYTHONPATH=$PWD/services:$PWD \
        python bench/live.py --rate 200 --subscribers 1000 --seconds 30 --name live_fanout

Writes bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench import event_loop
from bench.common import machine, percentiles, write_result

WORKFLOW = {"id": "6606c261-1566-5e10-8654-6b51fa242bf7", "name": "LiveBench", "module": ["live"]}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(name: str, span_id: str, parent: Any, body: dict[str, Any], trace_id: str) -> bytes:
    return orjson.dumps(
        {
            "id": str(uuid.uuid4()),
            "timestamp": now_iso(),
            "api_version": "2024-10-25",
            "trace_id": trace_id,
            "span_id": span_id,
            "parent": parent,
            "links": None,
            "name": name,
            "body": body,
        }
    )


async def emit(bus: Any, topic: str, execution_id: uuid.UUID, org: str, rate: int, seconds: float) -> dict[str, Any]:
    """Publish at `rate` events/s on an absolute 10 ms schedule; each event timestamped just before its send."""
    from spanline.bus.interface import ORG_HEADER

    producer = bus.producer()
    await producer.start()
    key, headers, trace = str(execution_id).encode(), ((ORG_HEADER, org.encode()),), str(uuid.uuid4())
    parent = {"type": "WORKFLOW", "span_id": str(execution_id), "workflow_definition": WORKFLOW, "parent": None}
    root_body = {"workflow_definition": WORKFLOW, "inputs": {"question": "live?"}}
    await producer.send(
        topic,
        envelope("workflow.execution.initiated", str(execution_id), None, root_body, trace),
        key=key,
        headers=headers,
    )
    await producer.flush()
    loop = asyncio.get_running_loop()
    sent, index, open_span, lags = 1, 0, "", []
    began = loop.time()
    tick = 0.01
    woke = began
    while (elapsed := loop.time() - began) < seconds:
        lags.append(max(0.0, loop.time() - woke) * 1000)  # how late this wake-up is
        due = 1 + int(rate * elapsed)
        while sent < due:
            node = {
                "id": str(uuid.uuid5(execution_id, str(index % 20))),
                "name": f"Node{index % 20}",
                "module": ["live"],
            }
            if not open_span:
                open_span = str(uuid.uuid4())
                body: dict[str, Any] = {"node_definition": node, "inputs": {"text": "x" * 400}}
                payload = envelope("node.execution.initiated", open_span, parent, body, trace)
            else:
                usage = {
                    "usage": [
                        {
                            "ml_model_name": "gpt-4o-mini",
                            "provider": "openai",
                            "ml_model_usage": {
                                "input_token_count": 812,
                                "output_token_count": 96,
                                "compute_nanos": 412_000_000,
                            },
                        }
                    ],
                    "cost": [{"value": 0.000179, "unit": "USD"}],
                }
                body = {"node_definition": node, "outputs": {"text": "y" * 300}, "usage_result": usage}
                payload = envelope("node.execution.fulfilled", open_span, parent, body, trace)
                open_span = ""
                index += 1
            await producer.send(topic, payload, key=key, headers=headers)
            sent += 1
        woke = loop.time() + tick
        await asyncio.sleep(tick)
    if open_span:
        await producer.send(
            topic,
            envelope("node.execution.fulfilled", open_span, parent, {"node_definition": node, "outputs": {}}, trace),
            key=key,
            headers=headers,
        )
        sent += 1
    end = {"workflow_definition": WORKFLOW, "outputs": {"answer": "done"}}
    await producer.send(
        topic, envelope("workflow.execution.fulfilled", str(execution_id), None, end, trace), key=key, headers=headers
    )
    sent += 1
    await producer.flush()
    await producer.stop()
    elapsed = loop.time() - began
    return {
        "ended_at": time.time(),
        "events": sent,
        "seconds": round(elapsed, 2),
        "events_per_s": round(sent / elapsed),
        "tick_lag_ms": percentiles(lags),
    }


async def warm_up(bus: Any, topic: str, metrics: Any) -> None:
    """One event of another execution, consumed and stored, so group join and first-batch costs are not timed."""
    producer = bus.producer()
    await producer.start()
    body = {"workflow_definition": WORKFLOW, "inputs": {}}
    other = str(uuid.uuid4())
    await producer.send(topic, envelope("workflow.execution.initiated", other, None, body, other), key=other.encode())
    await producer.flush()
    await producer.stop()
    while metrics.events < 1:  # noqa: ASYNC110 - the consumer exposes a counter, not an event
        await asyncio.sleep(0.05)


def record_gc_pauses() -> dict[str, list[float]]:
    """Every garbage collection's pause (ms) by generation: a candidate for event-loop stalls."""
    pauses: dict[str, list[float]] = {"0": [], "1": [], "2": []}
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[str(info["generation"])].append(round((time.perf_counter() - started[0]) * 1000, 2))

    gc.callbacks.append(callback)
    return pauses


def _cpu_seconds(process: psutil.Process) -> tuple[float, float]:
    """The process's CPU seconds (user + system), and its main thread's: the event loop's."""
    times = process.cpu_times()
    loop = next((thread for thread in process.threads() if thread.id == process.pid), None)
    return times.user + times.system, (loop.user_time + loop.system_time) if loop is not None else 0.0


def monitor_and_finish(
    args: argparse.Namespace,
    facts: dict[str, Any],
    broker: Any,
    client: subprocess.Popen[bytes],
    out: Path,
    consumer: asyncio.Task[Any],
    consumer_metrics: Any,
    shared: dict[str, Any],
) -> None:
    """Sample the API process every second until the client process exits, then write the JSON and exit."""
    me = psutil.Process()
    rss_start = me.memory_info().rss
    me.cpu_percent(None)
    cpu_start, loop_cpu_start = _cpu_seconds(me)
    samples: list[tuple[float, float, int]] = []
    consumed: list[tuple[float, int]] = []
    while client.poll() is None:
        time.sleep(1.0)
        consumed.append((time.time(), consumer_metrics.events))
        samples.append((me.cpu_percent(None), me.memory_info().rss / 2**20, len(me.net_connections("tcp"))))
    cpu_end, loop_cpu_end = _cpu_seconds(me)
    received = json.loads(out.read_text())
    if broker is None:
        while "emitted" not in shared:
            time.sleep(0.1)
        emitted = shared["emitted"]
        consumed_when_emission_ended = shared["consumed_when_emission_ended"]
    else:
        emitted = received.pop("emitter")
        ended = emitted["ended_at"]
        consumed_when_emission_ended = min(consumed, key=lambda item: abs(item[0] - ended))[1] if consumed else None
    cpu = [sample[0] for sample in samples]
    rss = [sample[1] for sample in samples]
    result = {
        "benchmark": args.name,
        "machine": facts,
        "bus": "memory (in-process)" if args.memory_bus else "kafka (real broker on this machine)",
        "event_loop": shared["loop"],
        "rate_target_events_per_s": args.rate,
        "subscribers": args.subscribers,
        "consumer_poll_ms": args.poll_ms,
        "kafka_fetch": shared["kafka_fetch"],
        "consumer_still_running": not consumer.done(),
        "consumer_stage_seconds": {k: round(v, 2) for k, v in sorted(consumer_metrics.stage_seconds.items())},
        "consumer_batches": consumer_metrics.batches,
        "gc_gen0_threshold": args.gc_gen0,
        "gc_pauses_ms": {
            generation: {"n": len(pauses), "max": max(pauses, default=0.0), "total": round(sum(pauses), 1)}
            for generation, pauses in shared["gc_pauses_ms"].items()
        },
        "emitter": emitted,
        "emitter_process": "the API's" if broker is None else "the client's (a separate process, like an executor)",
        "consumer_lag_events_when_emission_ended": None
        if consumed_when_emission_ended is None
        else emitted["events"] - consumed_when_emission_ended,
        "client": received,
        "api_process": {
            "what": "one process: API (uvicorn) + live hub + consumer + chDB"
            + (" + emitter" if broker is None else "")
            + "; SSE clients in another",
            "cpu_percent_p50": round(sorted(cpu)[len(cpu) // 2], 1) if cpu else None,
            "cpu_percent_max": round(max(cpu), 1) if cpu else None,
            "rss_mb_start": round(rss_start / 2**20, 1),
            "rss_mb_max": round(max(rss), 1) if rss else None,
            "rss_mb_end": round(rss[-1], 1) if rss else None,
            "rss_mb_series": [round(value) for value in rss],
            "tcp_connections_max": max((sample[2] for sample in samples), default=0),
            # CPU per delivered SSE message: steadier than the latencies on a machine shared with other work.
            "cpu_seconds": round(cpu_end - cpu_start, 2),
            "event_loop_thread_cpu_seconds": round(loop_cpu_end - loop_cpu_start, 2),
            "event_loop_cpu_us_per_message": round(
                (loop_cpu_end - loop_cpu_start) * 1e6 / max(1, received["events_received_total"]), 2
            ),
        },
    }
    write_result(args.name, result)
    print(json.dumps({key: result[key] for key in ("emitter", "client", "api_process")}, indent=1), flush=True)
    # uvicorn's graceful shutdown would first feed every stream's backlog to clients that are gone (minutes at
    # 1,000 subscribers): stop the broker and leave now that the figures are written.
    if broker is not None:
        broker.close()
    os._exit(0)


async def server(args: argparse.Namespace) -> None:
    """Runs the benchmark, writes its JSON and exits the process (see the end)."""
    from tests.kafka.broker import KafkaBroker
    from tests.live_server import serve

    from spanline.api.app import create_app
    from spanline.bus.factory import create_bus
    from spanline.consumer.metrics import ConsumerMetrics
    from spanline.consumer.service import run_consumer, tune_gc_for_batches
    from spanline.core.config import Settings
    from spanline.store.api_keys import create_api_key
    from spanline.store.migrations import apply_migrations
    from spanline.store.store import Store

    facts = machine()
    tune_gc_for_batches(args.gc_gen0)
    gc_pauses = record_gc_pauses()
    broker = None if args.memory_bus else KafkaBroker(heap="768m")
    if broker is not None:
        broker.start()
    try:
        suffix = uuid.uuid4().hex[:8]
        settings = Settings(
            clickhouse_dsn=f"chdb://{tempfile.mkdtemp(prefix='bench-live-')}",
            kafka_bootstrap=broker.bootstrap if broker else None,
            events_topic=f"live-events-{suffix}",
            dlq_topic=f"live-dlq-{suffix}",
            consumer_group=f"live-{suffix}",
            consumer_poll_ms=args.poll_ms,
        )
        bus: Any = create_bus(settings)  # SPANLINE_KAFKA_FETCH_* from the environment apply
        await bus.create_topics([settings.events_topic, settings.dlq_topic], settings.topic_partitions)
        store = Store(settings.clickhouse_dsn, threads=settings.store_threads)
        await store.run(lambda client: apply_migrations(client, settings.schemas_dir / "clickhouse"))
        key = (await create_api_key(store, "acme")).key
        stop = asyncio.Event()
        consumer_metrics = ConsumerMetrics()
        consumer = asyncio.create_task(
            run_consumer(settings, store=store, bus=bus, metrics=consumer_metrics, stop=stop)
        )
        execution_id = uuid.uuid4()
        await warm_up(bus, settings.events_topic, consumer_metrics)
        async with serve(create_app(settings, store=store, bus=bus)) as base_url:
            out = Path(tempfile.mkstemp(prefix="live-client-", suffix=".json")[1])
            client = subprocess.Popen(  # noqa: ASYNC220 - started once; waited for by the monitor thread
                [
                    sys.executable,
                    __file__,
                    "client",
                    "--url",
                    base_url,
                    "--key",
                    key,
                    "--execution",
                    str(execution_id),
                    "--subscribers",
                    str(args.subscribers),
                    "--sample-every",
                    str(args.sample_every),
                    "--seconds",
                    str(args.seconds + 60),
                    "--out",
                    str(out),
                    *([] if broker is None else ["--bootstrap", broker.bootstrap, "--topic", settings.events_topic]),
                    "--rate",
                    str(args.rate),
                    "--emit-seconds",
                    str(args.seconds),
                ],
                env=os.environ.copy(),
            )
            ready = out.with_suffix(".ready")
            while not ready.exists():
                if client.poll() is not None:
                    raise RuntimeError("the client process exited before connecting")
                await asyncio.sleep(0.1)
            loop_type = type(asyncio.get_running_loop())
            shared: dict[str, Any] = {
                "loop": f"{loop_type.__module__}.{loop_type.__qualname__}",
                "gc_pauses_ms": gc_pauses,
                "kafka_fetch": {
                    "min_bytes": settings.kafka_fetch_min_bytes,
                    "max_wait_ms": settings.kafka_fetch_max_wait_ms,
                },
            }
            # The monitor is a thread, not a task: at 1,000 subscribers the event loop is saturated for minutes
            # (it keeps feeding streams whose clients have gone), and the figures must not wait for it.
            monitor = threading.Thread(
                target=monitor_and_finish,
                args=(args, facts, broker, client, out, consumer, consumer_metrics, shared),
                daemon=True,
            )
            monitor.start()
            if broker is None:  # the memory bus lives in this process, so the emitter must too
                emitted = await emit(bus, settings.events_topic, execution_id, "acme", args.rate, args.seconds)
                shared["consumed_when_emission_ended"] = consumer_metrics.events
                shared["emitted"] = emitted
            await asyncio.Event().wait()  # the monitor thread writes the figures and exits the process
    finally:
        if broker is not None:
            broker.close()


async def client(args: argparse.Namespace) -> None:
    """N raw-socket SSE readers + detail visibility probes + a /healthz floor; writes JSON to --out."""
    host, port = args.url.removeprefix("http://").split(":")
    path = f"/v1/workflow-executions/{args.execution}/events"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-API-KEY: {args.key}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    sse_ms: list[float] = []
    counts: list[int] = [0] * args.subscribers
    finished: list[bool] = [False] * args.subscribers
    visible_ms: list[float] = []
    probes: list[asyncio.Task[None]] = []
    import httpx

    http = httpx.AsyncClient(
        base_url=args.url, headers={"X-API-KEY": args.key}, timeout=30, limits=httpx.Limits(max_connections=50)
    )
    node_spans = 0

    async def probe(span_id: str, emitted: float) -> None:
        url = f"/v1/workflow-executions/{args.execution}/detail"
        while time.time() < give_up_at:
            response = await http.get(url, params={"prev_span_id": span_id, "span_limit": 1})
            if response.status_code == 200:
                visible_ms.append((time.time() - emitted) * 1000)
                return
            await asyncio.sleep(args.probe_interval_ms / 1000)

    async def reader(number: int) -> None:
        nonlocal node_spans
        sampled = number % args.sample_every == 0
        reader_, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await writer.drain()
        buffer = b""
        try:
            while True:
                chunk = await reader_.read(1 << 16)
                if not chunk:
                    return
                arrived = time.time()
                counts[number] += chunk.count(b"\nid:") + chunk.startswith(b"id:")
                if b"workflow.execution.fulfilled" in chunk:
                    finished[number] = True
                if not sampled:
                    if finished[number]:
                        return
                    continue
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.startswith(b"data:"):
                        document = orjson.loads(line[5:])
                        emitted = datetime.fromisoformat(document["timestamp"].replace("Z", "+00:00")).timestamp()
                        sse_ms.append((arrived - emitted) * 1000)
                        if number == 0 and document["name"] == "node.execution.initiated":
                            node_spans += 1
                            if node_spans % args.probe_every == 0:
                                probes.append(asyncio.create_task(probe(document["span_id"], emitted)))
                if finished[number]:
                    return
        finally:
            writer.close()

    health_ms: list[float] = []

    async def health() -> None:
        while True:
            began = time.perf_counter()
            await http.get("/healthz")
            health_ms.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.1)

    give_up_at = time.time() + args.seconds
    readers = []
    for number in range(args.subscribers):
        readers.append(asyncio.create_task(reader(number)))
        if number % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    Path(args.out).with_suffix(".ready").write_text("ready")
    pinger = asyncio.create_task(health())
    emitted: dict[str, Any] | None = None
    if args.bootstrap:
        from spanline.bus.kafka import KafkaBus

        bus = KafkaBus(args.bootstrap)
        emitted = await emit(bus, args.topic, uuid.UUID(args.execution), "acme", args.rate, args.emit_seconds)
        await bus.close()
    done, pending = await asyncio.wait(readers, timeout=args.seconds)
    for task in pending:
        task.cancel()
    pinger.cancel()
    await asyncio.gather(*probes, return_exceptions=True)  # each gives up at the deadline
    await http.aclose()
    errors = [repr(task.exception()) for task in done if task.exception() is not None]
    result = {
        "sse_emission_to_arrival_ms": percentiles(sse_ms),
        "detail_emission_to_visible_ms": percentiles(visible_ms),
        "detail_probes_never_visible": len(probes) - len(visible_ms),
        "healthz_round_trip_ms": percentiles(health_ms),
        "subscribers_finished": sum(finished),
        "subscribers_still_open_at_timeout": len(pending),
        "events_received_per_subscriber": percentiles([float(count) for count in counts]),
        "events_received_total": sum(counts),
        "reader_errors": errors[:5],
    }
    if emitted is not None:
        result["emitter"] = emitted
    await asyncio.to_thread(Path(args.out).write_text, json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    runner = sub.add_parser("client")
    runner.add_argument("--url", required=True)
    runner.add_argument("--key", required=True)
    runner.add_argument("--execution", required=True)
    runner.add_argument("--subscribers", type=int, default=1)
    runner.add_argument("--sample-every", type=int, default=1)
    runner.add_argument("--seconds", type=float, default=90)
    runner.add_argument("--out", required=True)
    runner.add_argument("--bootstrap", default=None, help="emit from this process onto this Kafka")
    runner.add_argument("--topic", default=None)
    runner.add_argument("--rate", type=int, default=1000)
    runner.add_argument("--emit-seconds", type=float, default=30)
    # Probing is load on the server: n pending probes x polls/s. An earlier setting (1 span in 50, every 25 ms)
    # made the probes themselves the API's main work once visibility lagged; keep it to a few requests/s.
    runner.add_argument("--probe-every", type=int, default=500, help="probe one node span in this many")
    runner.add_argument("--probe-interval-ms", type=int, default=100)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--sample-every", type=int, default=10, help="every n'th client parses every timestamp")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--poll-ms", type=int, default=50, help="the consumer's poll timeout (batch wait)")
    parser.add_argument("--memory-bus", action="store_true", help="the in-process bus instead of real Kafka")
    parser.add_argument("--gc-gen0", type=int, default=10_000, help="the API process's gen-0 GC threshold (as dev)")
    parser.add_argument("--name", default="live")
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="asyncio",
        help="the API process's event loop (asyncio: as spanline dev)",
    )
    args = parser.parse_args()
    # The client process is the instrument: on uvloop whatever the server's loop (a slower client shows up
    # in the figures on 2 cores: its wake-ups are late, the emitter in it too).
    if args.command == "client":
        event_loop.run(client(args), "auto")
    else:
        event_loop.run(server(args), args.loop)
