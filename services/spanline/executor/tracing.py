"""The executor's OpenTelemetry setup: its own TracerProvider (not the global one) with the Vellum
event processor, plus an OTLP exporter when SPANLINE_OTLP_ENDPOINT is set and the `otlp` extra is in."""

from __future__ import annotations

import logging
import uuid
from contextvars import ContextVar
from uuid import UUID

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import Tracer

from spanline import __version__
from spanline.executor.spans import EventSink, VellumEventProcessor

log = logging.getLogger(__name__)

# The execution whose spans the current task starts (set by the runner): its trace id derives from it.
current_execution: ContextVar[UUID | None] = ContextVar("current_execution", default=None)


class DeterministicTraceIds(IdGenerator):
    """A run's trace id is derived from its execution id, so a re-run carries the same trace id; OTel
    span ids (not part of the events) stay random."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        execution = current_execution.get()
        return self._random.generate_trace_id() if execution is None else uuid.uuid5(execution, "trace").int


def build_tracer_provider(sink: EventSink, otlp_endpoint: str | None = None) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "spanline-executor"}), id_generator=DeterministicTraceIds()
    )
    provider.add_span_processor(VellumEventProcessor(sink))
    if otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "SPANLINE_OTLP_ENDPOINT is set but the otlp extra is not installed: pip install 'spanline[otlp]'"
            )
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    return provider


def executor_tracer(provider: TracerProvider) -> Tracer:
    return provider.get_tracer("spanline.executor", __version__)
