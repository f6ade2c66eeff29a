"""The admin API's roles, in a module of their own: the CLI's parser offers them
(``llmrelay admin-tokens create --role``) without importing the admin plane, which
``llmrelay serve`` must not load before its first admin call."""

from __future__ import annotations

from typing import Literal

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "viewer")
