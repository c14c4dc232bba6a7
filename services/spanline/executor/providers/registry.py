"""The providers a `model` node can name, built from settings."""

from __future__ import annotations

import httpx

from spanline.core.config import Settings
from spanline.executor.providers.base import ModelProvider
from spanline.executor.providers.local import LocalProvider
from spanline.executor.providers.openai_compat import OpenAICompatibleProvider


def build_providers(settings: Settings, client: httpx.AsyncClient | None = None) -> dict[str, ModelProvider]:
    """Always "local"; "openai" when SPANLINE_OPENAI_BASE_URL is set. Pass the `client` the composition
    root owns (and closes); without one the OpenAI-compatible provider makes its own (see its aclose)."""
    providers: dict[str, ModelProvider] = {"local": LocalProvider(settings.local_provider_latency_ms)}
    if settings.openai_base_url:
        api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        providers["openai"] = OpenAICompatibleProvider(settings.openai_base_url, api_key, client=client)
    return providers
