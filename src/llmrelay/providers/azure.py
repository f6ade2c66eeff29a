"""Azure OpenAI: OpenAI's wire format behind deployment URLs, ``api-version`` and ``api-key``.

Bodies, streams and errors are OpenAI's own, so everything but the URL and the key
header is the OpenAI pass-through (extra fields such as ``prompt_filter_results`` and
``content_filter_results`` reach the client untouched). The model a caller names is the
*deployment* name (``azure/my-gpt4o-deployment``); Azure's data plane lists base models
rather than deployments, so the deployments to advertise come from the config's
``models`` list.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from llmrelay.providers.base import ProviderSpec, UpstreamCall
from llmrelay.providers.openai_compat import OpenAICompatAdapter
from llmrelay.providers.specs import AZURE_API_VERSION


def _endpoint(spec: ProviderSpec) -> str:
    """The resource endpoint, accepting ``.../openai`` as well as the bare host."""
    return spec.base_url.rstrip("/").removesuffix("/openai")


class AzureOpenAIAdapter(OpenAICompatAdapter):
    """``type: azure``."""

    def _headers(self, spec: ProviderSpec) -> dict[str, str]:
        return spec.json_headers("api-key")

    def _url(self, spec: ProviderSpec, deployment: str, operation: str) -> str:
        version = quote(spec.api_version or AZURE_API_VERSION, safe="-.")
        return (
            f"{_endpoint(spec)}/openai/deployments/{quote(deployment, safe='-._')}/"
            f"{operation}?api-version={version}"
        )

    def chat_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str, stream: bool
    ) -> UpstreamCall:
        call = super().chat_request(spec, body, model, stream)
        return UpstreamCall(
            "POST", self._url(spec, model, "chat/completions"), self._headers(spec), call.body
        )

    def embeddings_request(
        self, spec: ProviderSpec, body: dict[str, Any], model: str
    ) -> UpstreamCall:
        call = super().embeddings_request(spec, body, model)
        return UpstreamCall(
            "POST", self._url(spec, model, "embeddings"), self._headers(spec), call.body
        )

    def models_request(self, spec: ProviderSpec) -> UpstreamCall | None:
        return None
