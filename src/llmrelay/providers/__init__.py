"""Provider adapters (pure translations) and the registry of configured providers."""
