"""Shared by the benchmark scripts: machine/version facts, percentiles, and the results writer."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PACKAGES = ("aiokafka", "chdb", "clickhouse-connect", "fastapi", "uvicorn", "sse-starlette", "msgspec", "httpx")


def machine() -> dict[str, Any]:
    """Where and when: CPU model, cores, memory, load at start, python, git commit and package versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb: float | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": memory_gb,
        "load_avg_at_start": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "git_commit": commit,
        "versions": versions,
    }


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of millisecond samples (inclusive method, so small samples still give p99)."""
    if not samples_ms:
        return {"n": 0}
    ordered = sorted(samples_ms)
    cuts = [ordered[0]] * 99 if len(ordered) == 1 else statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50": round(cuts[49], 3),
        "p95": round(cuts[94], 3),
        "p99": round(cuts[98], 3),
        "max": round(ordered[-1], 3),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


async def consume_all(settings: Any, store: Any, bus: Any, produced: int) -> tuple[Any, float]:
    """Run the consumer service until it has committed `produced` events; its metrics and the seconds taken."""
    from spanline.consumer.metrics import ConsumerMetrics
    from spanline.consumer.service import run_consumer

    metrics = ConsumerMetrics()
    stop = asyncio.Event()
    began = time.perf_counter()
    task = asyncio.create_task(run_consumer(settings, store=store, bus=bus, metrics=metrics, stop=stop))
    while metrics.events + metrics.dlq < produced:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - began
    stop.set()
    await task
    return metrics, elapsed
