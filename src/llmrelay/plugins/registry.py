"""Which plug-ins exist: the built-ins every call gets, and the factories selectable by name.

A plug-in selectable from the settings' ``plugins`` block, a key's ``metadata.plugins``
or a route config block is registered here under its name (the response cache and the
guardrails register themselves as ``cache`` and ``guardrails``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from llmrelay.governance.governor import Governor
from llmrelay.guardrails.moderation import Moderation
from llmrelay.guardrails.ner import NameModel
from llmrelay.guardrails.plugin import Guardrails
from llmrelay.guardrails.scan import CountFinding
from llmrelay.plugins.budget_guard import BudgetGuard
from llmrelay.plugins.chain import PluginFactory, PluginSelector

#: name -> factory of the plug-ins a config may select that need nothing but options.
FACTORIES: dict[str, PluginFactory] = {}


def plugin_selector(
    configured: Mapping[str, Mapping[str, Any]],
    governor: Governor,
    services: Mapping[str, PluginFactory] | None = None,
    moderation: Moderation | None = None,
    count: CountFinding | None = None,
    ner: NameModel | None = None,
) -> PluginSelector:
    """The gateway's selector: the configured plug-ins, then the built-ins.

    ``services`` are factories bound to state the gateway builds at start (the response
    cache's backend: ``{"cache": CacheRuntime.plugin}``), beside the stateless ones; the
    guardrails get the moderation client their content safety checks call and the
    metrics' counter of their findings and the process's NER model (loaded only when a
    guardrail asks for ``names: ner``)."""
    guardrails: PluginFactory = functools.partial(
        Guardrails.from_options, moderation=moderation, count=count, ner=ner
    )
    factories = {**FACTORIES, "guardrails": guardrails, **(services or {})}
    if "guardrails" in configured:
        guardrails(configured["guardrails"])  # a bad settings block fails the start
    return PluginSelector(factories, (BudgetGuard(governor),), configured)
