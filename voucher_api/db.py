"""Database plumbing: the declarative base, portable column types, engine and session factories.

The same models run on PostgreSQL (production, CI) and SQLite (the embedded default).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC; SQLite's naive values come back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front, so two writers queue instead of failing mid-transaction.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, pool_size: int = 5, echo: bool = False, pre_ping: bool = True) -> Engine:
    """An engine configured for the URL's dialect.

    `pre_ping` tests each pooled connection with a round trip before handing it out; see `create_app`
    for why the API does without it.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 15},
            poolclass=NullPool if ":memory:" not in url else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=pre_ping)


def make_session_factory(bind: Any, **kwargs: Any) -> sessionmaker[Session]:
    return sessionmaker(bind=bind, expire_on_commit=False, **kwargs)


_AUTOCOMMIT = "AUTOCOMMIT"


def commit_each_statement(session: Session) -> bool:
    """Let each statement of a fresh session commit by itself, where that loses nothing; returns whether.

    For a unit of work whose writes are each one statement (a boarding, an alighting), a transaction
    around them only adds two round trips, BEGIN and COMMIT: every statement is atomic on its own, and
    under READ COMMITTED a read inside a transaction sees no more than one outside it. Only on
    PostgreSQL and a session bound to an engine, before its first statement: SQLite's step-by-step
    writes need their transaction, and a session bound to a connection (a caller's own transaction,
    the tests' savepoints) keeps it. A part that needs several statements in one transaction starts
    one with `one_transaction_from_here`. The pool resets the connection when it is given back.
    """
    bind = session.get_bind()
    if not isinstance(bind, Engine) or bind.dialect.name != "postgresql" or session.in_transaction():
        return False
    session.connection(execution_options={"isolation_level": _AUTOCOMMIT})
    return True


def one_transaction_from_here(session: Session) -> None:
    """Run what follows in one transaction, also on a session that `commit_each_statement` switched.

    What that session ran before is committed already (statement by statement), so ending its
    autocommit unit loses nothing; its next statement starts a transaction on a connection as the
    engine gives it. A session in an ordinary transaction is left as it is.
    """
    if not session.in_transaction():
        return
    if session.connection().get_execution_options().get("isolation_level") == _AUTOCOMMIT:
        session.commit()
