"""A small OpenTelemetry-instrumented "app" for the OTLP intake tests: one trace of a RAG-style request
with a GenAI chat span, an OpenInference LLM span under an agent span, a retrieval span with a span event,
and a tool span that fails; spans are recorded by the real opentelemetry-sdk."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.usage.input_tokens": 812,
    "gen_ai.usage.output_tokens": 96,
    "gen_ai.usage.cache_read.input_tokens": 512,
}
OPENINFERENCE = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "claude-3-5-haiku-20241022",
    "llm.provider": "anthropic",
    "llm.token_count.prompt": 300,
    "llm.token_count.completion": 40,
    "input.value": "summarize the documents",
    "output.value": "three documents about keys",
}
# span name → parent span name (None: the root)
TREE = {
    "answer-question": None,
    "retrieve": "answer-question",
    "chat gpt-4o-mini": "answer-question",
    "agent": "answer-question",
    "llm": "agent",
    "search-tool": "agent",
}


def run_app(exporter: SpanExporter, *, service: str = "rag-app", fail_root: bool = False) -> None:
    """One trace; every span is handed to `exporter` when it ends (children before their parents)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.otlp_app")
    with tracer.start_as_current_span("answer-question", record_exception=False, set_status_on_exception=False) as root:
        root.set_attribute("input.value", "why keys?")
        with tracer.start_as_current_span("retrieve") as retrieve:
            retrieve.add_event("cache miss", {"documents": 3})
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=GENAI):
            pass
        with tracer.start_as_current_span("agent"):
            with tracer.start_as_current_span("llm", attributes=OPENINFERENCE):
                pass
            with tracer.start_as_current_span("search-tool") as tool:
                tool.record_exception(TimeoutError("search backend did not answer"))
                tool.set_status(Status(StatusCode.ERROR, "tool timed out"))
        if fail_root:
            root.set_status(Status(StatusCode.ERROR, "the request failed"))
        else:
            root.set_attribute("output.value", "because order matters")
    provider.shutdown()


def recorded_spans(**kwargs: object) -> Sequence[ReadableSpan]:
    memory = InMemorySpanExporter()
    run_app(memory, **kwargs)  # type: ignore[arg-type]
    return memory.get_finished_spans()


def export_request(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The request the OTLP exporters send for these spans (their own encoder)."""
    return encode_spans(spans)
