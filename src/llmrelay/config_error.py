"""The configuration error, in a leaf module so every layer can raise it.

``config.py`` re-exports it; the providers package raises it while validating provider
entries without importing ``config.py`` (which would make the two import each other).
"""

from __future__ import annotations


class ConfigError(Exception):
    """Invalid configuration; the message names the bad key and what to do."""
