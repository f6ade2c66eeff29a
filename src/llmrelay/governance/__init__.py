"""Who may call what: virtual keys (and, later, limits and budgets)."""
