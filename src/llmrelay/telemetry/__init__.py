"""Logs, metrics and interaction records."""
