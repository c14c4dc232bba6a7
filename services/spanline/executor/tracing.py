"""The executor's OpenTelemetry setup: its own TracerProvider (not the global one) with the Vellum
event processor, plus an OTLP exporter when SPANLINE_OTLP_ENDPOINT is set and the `otlp` extra is in."""

from __future__ import annotations

import logging

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

from spanline import __version__
from spanline.executor.spans import EventSink, VellumEventProcessor

log = logging.getLogger(__name__)


def build_tracer_provider(sink: EventSink, otlp_endpoint: str | None = None) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "spanline-executor"}))
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
