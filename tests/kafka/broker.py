"""A real single-node Apache Kafka broker (KRaft) on 127.0.0.1 for tests, CI and benchmarks.

The jars come from Maven Central through the pom beside this file. `python -m tests.kafka.broker fetch`
downloads them (CI does this once); `KafkaBroker` formats a fresh log dir and runs `kafka.Kafka`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent
DEFAULT_JARS_DIR = HERE.parents[1] / ".cache" / "kafka-jars"
START_TIMEOUT_S = 90.0


def jars_dir() -> Path:
    return Path(os.environ.get("SPANLINE_KAFKA_JARS", DEFAULT_JARS_DIR))


def fetch_jars(target: Path | None = None) -> Path:
    """Download the broker and its runtime dependencies with mvn (a no-op when already there)."""
    target = target or jars_dir()
    if any(target.glob("kafka_2.13-*.jar")):
        return target
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(HERE / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={target}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    return target


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    return str(Path(java_home) / "bin" / "java") if java_home else "java"


class KafkaBroker:
    """One broker process; `stop()` then `start()` restarts it on the same port and data."""

    def __init__(self, *, work_dir: Path | None = None, heap: str = "768m") -> None:
        self._jars = fetch_jars()
        self._owns_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="spanline-kafka-"))
        self.port = _free_port()
        self.controller_port = _free_port()
        self._heap = heap
        self._process: subprocess.Popen[bytes] | None = None
        self._formatted = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _classpath(self) -> str:
        return str(self._jars / "*")

    def _write_config(self) -> Path:
        config = self.work_dir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.work_dir / 'logs'}",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "",
                ]
            )
        )
        return config

    def _format(self, config: Path) -> None:
        # Kafka's cluster ids are 16 random bytes in unpadded url-safe base64 (Uuid.toString()).
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(
            [
                _java(),
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # one token: the id may start with "-"
                "-c",
                str(config),
                "--standalone",
            ],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        if self._process is not None:
            return
        config = self._write_config()
        if not self._formatted:
            self._format(config)
            self._formatted = True
        log = (self.work_dir / "broker.log").open("ab")
        self._process = subprocess.Popen(
            [
                _java(),
                f"-Xmx{self._heap}",
                f"-Xms{self._heap}",
                "-XX:+UseG1GC",
                f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
                "-cp",
                self._classpath(),
                "kafka.Kafka",
                str(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        """Poll until the broker serves metadata for a new topic (retries, not sleeps, gate it)."""
        from aiokafka.errors import KafkaError  # local: only the harness needs it at start

        deadline = time.monotonic() + START_TIMEOUT_S
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"Kafka exited with {self._process.returncode}; see {self.work_dir}/broker.log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                _probe_metadata(self.bootstrap)
                return
            except (OSError, KafkaError, TimeoutError) as exc:
                last_error = exc
                time.sleep(0.2)  # polling interval of a readiness wait, not synchronisation
        self.stop()
        raise RuntimeError(f"Kafka did not become ready in {START_TIMEOUT_S}s: {last_error}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _probe_metadata(bootstrap: str) -> None:
    import asyncio
    import concurrent.futures

    from aiokafka.client import AIOKafkaClient

    async def probe() -> None:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(client.bootstrap(), 5)
        finally:
            await client.close()

    # A thread of its own, so the probe also works when the caller is inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as runner:
        runner.submit(asyncio.run, probe()).result()


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "fetch"
    if command == "fetch":
        print(fetch_jars())
    elif command == "run":  # a broker in the foreground, for benchmarks and manual runs
        with KafkaBroker() as broker:
            print(broker.bootstrap, flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                broker._process.wait() if broker._process else None
    else:
        raise SystemExit(f"unknown command {command!r}; use fetch or run")
