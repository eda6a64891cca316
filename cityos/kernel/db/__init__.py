"""Catalog database: SQLAlchemy models, engine/session helpers, Alembic migrations."""
