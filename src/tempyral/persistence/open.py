"""Which store a server runs on: `--db` names a PostgreSQL database by URL, or a SQLite file."""

from __future__ import annotations

from tempyral.config import ServerConfig
from tempyral.persistence.store import Store


def is_postgres_url(db: str | None) -> bool:
    return db is not None and db.startswith(("postgresql://", "postgres://"))


def open_store(config: ServerConfig) -> Store:
    """The store the configuration names (not yet opened)."""
    if is_postgres_url(config.db):
        assert config.db is not None
        from tempyral.persistence.postgres import PostgresStore  # the driver is loaded only when used

        return PostgresStore(config.db, connect_timeout_s=config.nodes.connect_timeout_s)
    from tempyral.persistence.sqlite import SqliteStore

    path = config.db if config.db is not None else config.db_filename
    return SqliteStore(path, config.sqlite_synchronous, config.sqlite_pragmas)


def describe(config: ServerConfig) -> str:
    """The database, for logs and messages: a URL without its password, or the file."""
    if is_postgres_url(config.db):
        assert config.db is not None
        from tempyral.persistence.postgres import describe_url

        return describe_url(config.db)
    db = config.db if config.db is not None else config.db_filename
    return db or "in-memory"
