"""Persistence: SQLAlchemy models, Alembic migrations, repositories, the batch log writer."""
