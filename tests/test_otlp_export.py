"""With SPANLINE_OTLP_ENDPOINT set, the executor's OTel spans also go out over OTLP/HTTP (to a small
collector stand-in on 127.0.0.1), beside the Vellum events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spanline.events.execution_request import ExecutionRequest, WorkflowSnapshot
from spanline.events.models import Event
from spanline.executor.pricing import PriceTable
from spanline.executor.providers.local import LocalProvider
from spanline.executor.runner import WorkflowRunner
from spanline.executor.tracing import build_tracer_provider, executor_tracer
from tests.conftest import PROJECT_ROOT
from tests.threaded_server import ThreadedServer


async def test_spans_are_exported_over_otlp_when_configured() -> None:
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        received.append(message)
        return Response(b"", media_type="application/x-protobuf")

    collector = ThreadedServer(Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])]))
    collector.start()
    events: list[Event] = []
    try:
        provider = build_tracer_provider(
            lambda org, root, event: events.append(event), f"{collector.base_url}/v1/traces"
        )
        runner = WorkflowRunner(
            executor_tracer(provider), lambda o, r, e: events.append(e), {"local": LocalProvider(1)}, PriceTable.load()
        )
        definition = json.loads((PROJECT_ROOT / "examples" / "workflows" / "summarize.json").read_text())
        request = ExecutionRequest(
            execution_id=uuid.uuid4(),
            org="acme",
            workflow=WorkflowSnapshot(uuid.uuid4(), 1, definition),
            inputs={"text": "export me"},
            requested_at=datetime.now(UTC),
        )
        outcome = await runner.run(request)
        assert outcome.error is None
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
        collector.stop()

    spans = [
        span for message in received for rs in message.resource_spans for ss in rs.scope_spans for span in ss.spans
    ]
    assert sorted(span.name for span in spans) == ["node prompt", "node summary", "workflow summarize"]
    exported_ids = {
        next(a.value.string_value for a in span.attributes if a.key == "spanline.span_id") for span in spans
    }
    assert exported_ids == {str(event.span_id) for event in events}
    assert len({span.trace_id for span in spans}) == 1
