"""Persistent state: SqlStore implements ports.Store on SQLite or PostgreSQL."""

from .sql import SqlStore

__all__ = ["SqlStore"]
