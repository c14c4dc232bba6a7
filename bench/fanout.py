"""The SSE fan-out path alone: what one API process's event loop spends to deliver a steady stream of
events to N subscribers of one execution, and how late they arrive.

bench/live.py measures the whole pipeline (Kafka, the consumer and chDB in the API process, a Python
asyncio client of 1,000 streams in a second process, on the same 2 cores); its latencies move with
everything else on the machine. This keeps only the part issue 15's item 5 changes: the real app (the
stream route, the live hub, uvicorn) on the in-process bus, no consumer, and a client that reads its N
sockets with epoll and plain `recv` (much cheaper than the server's side, so it is not the bottleneck).
The paced emitter publishes bench/live.py's event shapes; a published event's time is taken just before
its send. Every --sample-every'th stream records when each event id arrives.

    PYTHONPATH=$PWD/services:$PWD python bench/fanout.py --subscribers 1000 --rate 200 --seconds 20

Writes bench/results/<name>.json: delivery latency (publish → arrival) p50/p99, the event loop thread's
CPU seconds and µs per delivered message, and whether every message was delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import event_loop
from bench.common import machine, percentiles, write_result
from bench.live import WORKFLOW, envelope

ID_LINE = re.compile(rb"(?:^|\n)id: (\d+)\r\n")


def client(args: argparse.Namespace) -> None:
    """N raw SSE connections read with epoll into one buffer; each counts its events, sampled ones note
    (offset, arrival) of every event. `Connection: close`: a stream that ended (after the execution's
    terminal event) is an end of file."""
    request = (
        f"GET /v1/workflow-executions/{args.execution}/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"X-API-KEY: {args.key}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    selector = selectors.DefaultSelector()
    counts = [0] * args.subscribers
    edges = [b""] * args.subscribers  # the last bytes read: an `id:` may be split between two reads
    tails: dict[int, bytes] = {}  # sampled streams: the unfinished line
    arrivals: dict[int, list[tuple[int, float]]] = {}
    for number in range(args.subscribers):
        sock = socket.create_connection(("127.0.0.1", args.port))
        sock.sendall(request)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, number)
        if number % args.sample_every == 0:
            arrivals[number], tails[number] = [], b""
    Path(args.out).with_suffix(".ready").write_text("ready")
    buffer = bytearray(1 << 18)  # one buffer for every read: no allocation per recv
    open_streams, deadline = args.subscribers, time.time() + args.seconds
    while open_streams and time.time() < deadline:
        for key, _ in selector.select(timeout=1.0):
            number, sock = key.data, key.fileobj
            size = sock.recv_into(buffer)  # type: ignore[union-attr]
            if not size:
                selector.unregister(sock)
                sock.close()  # type: ignore[union-attr]
                open_streams -= 1
                continue
            now = time.time()
            head = bytes(buffer[: min(4, size)])
            counts[number] += buffer.count(b"\nid: ", 0, size) + (edges[number] + head).count(b"\nid: ")
            edges[number] = bytes(buffer[max(0, size - 4) : size])
            if number in arrivals:
                data = tails[number] + bytes(buffer[:size])
                cut = data.rfind(b"\n")
                tails[number] = data[cut + 1 :]
                arrivals[number].extend((int(offset), now) for offset in ID_LINE.findall(data, 0, cut + 1))
    result = {
        "counts": counts,
        "arrivals": {str(k): v for k, v in arrivals.items()},
        "open_at_end": open_streams,
        "cpu_seconds": time.process_time(),
    }
    Path(args.out).write_text(json.dumps(result))


async def emit(bus: Any, topic: str, execution_id: uuid.UUID, rate: int, seconds: float) -> dict[int, float]:
    """bench/live.py's event shapes at `rate`/s on a 10 ms schedule; each event's offset → time of its send."""
    from spanline.bus.interface import ORG_HEADER

    producer = bus.producer()
    await producer.start()
    key, headers, trace = str(execution_id).encode(), ((ORG_HEADER, b"acme"),), str(uuid.uuid4())
    parent = {"type": "WORKFLOW", "span_id": str(execution_id), "workflow_definition": WORKFLOW, "parent": None}
    sent: dict[int, float] = {}  # the execution's partition holds its events only: offsets 0, 1, 2, ...

    async def send(name: str, span: str, parent_: Any, body: dict[str, Any]) -> None:
        began = time.time()
        await producer.send(topic, envelope(name, span, parent_, body, trace), key=key, headers=headers)
        sent[len(sent)] = began

    await send("workflow.execution.initiated", str(execution_id), None, {"workflow_definition": WORKFLOW, "inputs": {}})
    loop = asyncio.get_running_loop()
    began, count, open_span = loop.time(), 1, ""
    node = {"id": str(uuid.uuid5(execution_id, "n")), "name": "Node", "module": ["live"]}
    while (elapsed := loop.time() - began) < seconds:
        while count < 1 + int(rate * elapsed):
            if not open_span:
                open_span = str(uuid.uuid4())
                await send(
                    "node.execution.initiated", open_span, parent, {"node_definition": node, "inputs": {"t": "x" * 400}}
                )
            else:
                await send(
                    "node.execution.fulfilled",
                    open_span,
                    parent,
                    {"node_definition": node, "outputs": {"t": "y" * 300}},
                )
                open_span = ""
            count += 1
        await asyncio.sleep(0.01)
    await send(
        "workflow.execution.fulfilled", str(execution_id), None, {"workflow_definition": WORKFLOW, "outputs": {}}
    )
    await producer.stop()
    return sent


def loop_cpu_seconds() -> float:
    me = psutil.Process()
    thread = next(thread for thread in me.threads() if thread.id == me.pid)
    return thread.user_time + thread.system_time


async def server(args: argparse.Namespace) -> None:
    from tests.live_server import serve

    from spanline.api.app import create_app
    from spanline.bus.memory import MemoryBus
    from spanline.core.config import Settings
    from spanline.store.api_keys import create_api_key
    from spanline.store.migrations import apply_migrations
    from spanline.store.store import Store

    facts = machine()
    settings = Settings(clickhouse_dsn=f"chdb://{tempfile.mkdtemp(prefix='bench-fanout-')}")
    bus = MemoryBus()
    await bus.create_topics([settings.events_topic], settings.topic_partitions)
    store = Store(settings.clickhouse_dsn, threads=settings.store_threads)
    await store.run(lambda c: apply_migrations(c, settings.schemas_dir / "clickhouse"))
    key = (await create_api_key(store, "acme")).key
    execution_id = uuid.uuid4()
    app = create_app(settings, store=store, bus=bus)
    sends = [0]

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        """Counts the body sends (one per stream wake-up): cost per send, not only per message."""

        async def counted(message: Any) -> None:
            if message["type"] == "http.response.body":
                sends[0] += 1
            await send(message)

        await app(scope, receive, counted)

    async with serve(counting) as base_url:
        out = Path(tempfile.mkstemp(prefix="fanout-client-", suffix=".json")[1])
        command = [sys.executable, __file__, "client", "--port", base_url.rsplit(":", 1)[1], "--key", key]
        command += ["--execution", str(execution_id), "--subscribers", str(args.subscribers)]
        command += ["--sample-every", str(args.sample_every), "--seconds", str(args.seconds + 60), "--out", str(out)]
        reader = subprocess.Popen(command, env=os.environ.copy())  # noqa: ASYNC220 - started once, waited below
        deadline = time.time() + 120
        async with httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": key}) as http:
            # Every stream subscribed before the first event (the same execution's history read first).
            while (await http.get("/metrics")).json()["live_subscribers"] < args.subscribers:
                assert time.time() < deadline and reader.poll() is None, "the client did not connect"
                await asyncio.sleep(0.2)
        cpu_before, wall_before, sends_before = loop_cpu_seconds(), time.time(), sends[0]
        sent = await emit(bus, settings.events_topic, execution_id, args.rate, args.seconds)
        while reader.poll() is None:  # noqa: ASYNC110 - a child process has no awaitable exit here
            await asyncio.sleep(0.05)
        cpu, wall, sent_chunks = loop_cpu_seconds() - cpu_before, time.time() - wall_before, sends[0] - sends_before
    received = json.loads(await asyncio.to_thread(out.read_text))
    latencies = [(at - sent[offset]) * 1000 for per in received["arrivals"].values() for offset, at in per]
    delivered = sum(received["counts"])
    loop_type = type(asyncio.get_running_loop())
    result = {
        "benchmark": args.name,
        "machine": facts,
        "event_loop": f"{loop_type.__module__}.{loop_type.__qualname__}",
        "subscribers": args.subscribers,
        "rate_events_per_s": args.rate,
        "events": len(sent),
        "messages_delivered": delivered,
        "messages_expected": len(sent) * args.subscribers,
        "streams_open_at_end": received["open_at_end"],
        "delivery_ms": percentiles(latencies),
        "event_loop_cpu_seconds": round(cpu, 2),
        "wall_seconds": round(wall, 2),
        "event_loop_busy": round(cpu / wall, 2),
        "event_loop_cpu_us_per_message": round(cpu * 1e6 / max(1, delivered), 2),
        "sends": sent_chunks,
        "messages_per_send": round(delivered / max(1, sent_chunks), 2),
        "event_loop_cpu_us_per_send": round(cpu * 1e6 / max(1, sent_chunks), 2),
        "client_cpu_seconds": round(received["cpu_seconds"], 2),
    }
    write_result(args.name, result)
    print(json.dumps(result, indent=1), flush=True)
    os._exit(0)  # the streams are done; skip uvicorn's drain of connections the client closed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    reader_args = sub.add_parser("client")
    for flag in ("--port", "--key", "--execution", "--out"):
        reader_args.add_argument(flag, required=True)
    reader_args.add_argument("--subscribers", type=int, required=True)
    reader_args.add_argument("--sample-every", type=int, default=10)
    reader_args.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--sample-every", type=int, default=10)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--name", default="fanout")
    args = parser.parse_args()
    if args.command == "client":
        args.port = int(args.port)
        client(args)
    else:
        event_loop.run(server(args), args.loop)
