"""``llmrelay probe``: does every provider's model answer through the gateway?

The probe is a client of the gateway's HTTP API, like any application: it lists each
provider's models (``/v1/models?provider=NAME``), then asks the first few of them a
short question (and, on request, a streamed one, a tool call, JSON mode, the Messages
and Responses translations, embeddings), so one run tests auth, routing, translation
and error handling end to end. docs/probe.md has the whole story.

Modules: :mod:`.config` (options), :mod:`.classify` (failure reasons), :mod:`.targets`
(which models), :mod:`.wire` (one HTTP call with the 429 wait), :mod:`.tiers` (what is
asked), :mod:`.runner` (bounded concurrency), :mod:`.report` and :mod:`.render` (the
result and its table), :mod:`.history` (the stored runs), :mod:`.local` (a gateway of
the local configuration), :mod:`.command` (the subcommand).
"""
