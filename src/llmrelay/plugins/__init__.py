"""Plug-ins: steps around a call's upstream attempts (see :mod:`.chain`)."""
