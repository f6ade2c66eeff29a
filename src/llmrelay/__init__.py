"""llmrelay: one endpoint for every LLM provider."""

__version__ = "0.1.0"
