"""PII guardrails: detect, deny, redact (and restore), flag, on input and output.

See docs/guardrails.md. The plug-in is :class:`~llmrelay.guardrails.plugin.Guardrails`,
selected by a route config's ``guardrails`` block, the settings' ``plugins`` block or a
key's ``metadata.plugins``.
"""
