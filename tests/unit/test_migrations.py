from __future__ import annotations

from alembic.script import ScriptDirectory

from llmrelay.store.database import _alembic_config, head_revisions


def test_fast_head_lookup_agrees_with_alembic() -> None:
    script = ScriptDirectory.from_config(_alembic_config())
    assert head_revisions() == set(script.get_heads())
    assert len(head_revisions()) == 1, "migration graph must have exactly one head"
