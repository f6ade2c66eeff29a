"""Who may call what, how much, and at what cost: virtual keys and teams, rate limits,
budgets, prices and usage accounting (see docs/operations.md)."""
