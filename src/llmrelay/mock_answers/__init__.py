"""What the mocks answer: pure, deterministic builders of each provider's wire format.

Two mocks speak these formats: the built-in ``mock`` provider, which answers inside the
serving gateway with no network (:mod:`llmrelay.providers.mock`), and the mock upstream
HTTP server used by tests, demos and benchmarks (:mod:`llmrelay.mock_upstream`). Both
build their answers here, so they cannot drift apart, and nothing here imports aiohttp:
the serve path (``import llmrelay.app``) never loads the mock server (a test in
``tests/unit/test_mock_import_path.py`` guards it).

* :mod:`.openai_format` (chat completions, embeddings, models, errors),
  :mod:`.responses_format` (the Responses API), :mod:`.anthropic_format` (Messages, with
  :mod:`.anthropic_validate`), :mod:`.gemini_format` and :mod:`.bedrock_format`;
* :mod:`.json_instance`: a deterministic value for a JSON Schema, so tool-call arguments
  and structured outputs validate against the schema the client sent;
* :mod:`.tool_choice`: which tool a reply calls, the same rule for every format.
"""
