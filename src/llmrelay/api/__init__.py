"""The HTTP surface: OpenAI-compatible endpoints and operational endpoints."""
