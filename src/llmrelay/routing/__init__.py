"""Which provider and model a request goes to."""
