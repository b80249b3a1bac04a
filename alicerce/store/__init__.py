"""Persistence: SQLAlchemy 2 tables, the engine, Alembic migrations, one module per concept."""

from alicerce.store.database import Database

__all__ = ["Database"]
