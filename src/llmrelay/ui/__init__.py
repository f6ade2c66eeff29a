"""The web UI: static files under ``/ui`` that drive the ``/admin`` REST API."""
