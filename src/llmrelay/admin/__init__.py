"""The admin plane: a FastAPI application under ``/admin`` (OpenAPI at
``/admin/openapi.json``), built in a thread once start-up is complete (:mod:`.app`), so
the proxy's start-up and hot path never import FastAPI or pydantic.

Modules: :mod:`.app` (the ASGI entry, error shape), :mod:`.auth` (master key and admin
tokens with roles), :mod:`.audit` (every change, secrets masked), one ``routes_*`` module
per resource.
"""
