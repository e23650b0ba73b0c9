"""The project's own SQL databases (the delivery ledger, later the alert state): connecting, and
keeping their schema current.

SQLite is the embedded default and PostgreSQL the deployment's database; one code path serves
both through SQLAlchemy Core. What differs is concurrency, and that is settled here once:

- SQLite: every transaction starts with ``BEGIN IMMEDIATE``, so a transaction that reads and
  then writes holds the write lock from its first statement. With pysqlite's default deferred
  transactions, two processes that both read and then both try to write deadlock, and SQLite
  answers one of them "database is locked" at once instead of waiting. Writers wait for each
  other up to ``busy_timeout``; WAL lets readers go on meanwhile.
- PostgreSQL: read committed, as it comes; callers that must not race use conditional
  ``UPDATE``\\ s (compare-and-swap) and ``INSERT ... ON CONFLICT DO NOTHING``. Creating or
  upgrading a schema takes a transaction-level advisory lock: concurrent ``CREATE TABLE``\\ s
  of the same table otherwise fail with a unique violation in PostgreSQL's catalog.

Every schema carries a version in ``sa_hygiene_schema`` (one row per component); an upgrade
step per version brings an older database forward, whoever opens it first (a DAG task, the
command line or the deployment's init service).

A database that is down, unreachable, or not a database at all is one clear ``DatabaseError``
naming it (password hidden), never a driver traceback.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    inspect,
    make_url,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

T = TypeVar("T")

# Seconds a SQLite writer waits for another one before giving up.
SQLITE_BUSY_SECONDS = 60.0

versions_metadata = MetaData()
schema_versions = Table(
    "sa_hygiene_schema",
    versions_metadata,
    Column("component", String(40), primary_key=True),
    Column("version", Integer, nullable=False),
)

# An upgrade step brings a component from the version before it to its own number.
Upgrade = Callable[[Connection], None]


class DatabaseError(RuntimeError):
    """A project database that cannot be used; the message is one line for an operator."""


def safe_url(url: str) -> str:
    """The URL as it may be logged: the password hidden; an unparsable URL not repeated at all."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number ("host:[::1")
        return "(unparsable URL)"


def reason(exc: BaseException) -> str:
    """The first line a driver gives, without SQLAlchemy's statement and background link."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def connect(url: str, what: str) -> Engine:
    """An engine for ``url``; ``what`` names the database in errors ("the delivery ledger")."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DatabaseError(
            f"{what}: not a database URL (expected sqlite:///path or postgresql+psycopg://user@host/db)"
        ) from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"{what} {safe_url(url)}: cannot create {folder}: {exc.strerror}") from None
    try:
        engine = create_engine(url, **({"connect_args": {"timeout": SQLITE_BUSY_SECONDS}} if is_sqlite else {}))
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise DatabaseError(f"{what} {safe_url(url)}: {reason(exc)}") from None
    if is_sqlite:
        _immediate_transactions(engine)
    return engine


def _immediate_transactions(engine: Engine) -> None:
    """SQLite: take the write lock at BEGIN (see the module's docstring); WAL for readers."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not emit its own BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_SECONDS * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def insert_ignoring_conflicts(conn: Connection, table: Table, rows: dict | Sequence[dict]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING, on either database; the number of rows inserted.

    SQLAlchemy promises a row count for UPDATE and DELETE only: without ``preserve_rowcount``
    an INSERT through psycopg reports -1, and every claim would read as lost."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).on_conflict_do_nothing().execution_options(preserve_rowcount=True)
    return conn.execute(stmt, rows).rowcount


def upsert(conn: Connection, table: Table, rows: Sequence[dict], keys: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, on either database: concurrent writers of the same
    key both succeed, the last one wins."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    columns = [c for c in rows[0] if c not in keys]
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys),
                                            set_={c: stmt.excluded[c] for c in columns}), list(rows))  # fmt: skip


@contextmanager
def schema_lock(engine: Engine):
    """A transaction in which no other process creates or upgrades a schema of this database."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({zlib.crc32(b'sa_hygiene_schema')})")
        yield conn  # SQLite: BEGIN IMMEDIATE already holds the database's write lock


def ensure_schema(
    engine: Engine, what: str, component: str, metadata: MetaData, upgrades: dict[int, Upgrade]
) -> int:
    """Create ``metadata``'s tables, or bring them to the newest version of ``upgrades``
    (``{version: step}``; version 1 needs no step). Returns the version found before."""
    newest = max([1, *upgrades])
    try:
        with schema_lock(engine) as conn:
            versions_metadata.create_all(conn)
            found = conn.execute(
                select(schema_versions.c.version).where(schema_versions.c.component == component)
            ).scalar()
            if found is None:
                # Tables made before versions were kept are version 1; none at all: the newest.
                existing = set(inspect(conn).get_table_names())
                found = 1 if existing & set(metadata.tables) else newest
                for version in range(found + 1, newest + 1):
                    upgrades[version](conn)
                metadata.create_all(conn)
                conn.execute(schema_versions.insert().values(component=component, version=newest))
                return found
            if not isinstance(found, int) or isinstance(found, bool) or found < 1:
                raise DatabaseError(
                    f"{what}: its schema version ({found!r}) in table sa_hygiene_schema is no version this "
                    f"sa-hygiene ever wrote (1 to {newest}): it was edited by hand; restore it from a backup"
                )
            if found > newest:
                raise DatabaseError(
                    f"{what}: its schema is version {found}, newer than this sa-hygiene knows ({newest}): "
                    "upgrade sa-hygiene everywhere first"
                )
            for version in range(found + 1, newest + 1):
                upgrades[version](conn)
            metadata.create_all(conn)
            if found != newest:
                conn.execute(
                    schema_versions.update().where(schema_versions.c.component == component).values(version=newest)
                )
            return found
    except SQLAlchemyError as exc:
        raise DatabaseError(f"{what} {engine.url.render_as_string(hide_password=True)}: {reason(exc)}") from None


def in_transaction(engine: Engine, what: str, fn: Callable[[Connection], T]) -> T:
    """``fn`` in one transaction; a database failure as one ``DatabaseError`` naming ``what``."""
    try:
        with engine.begin() as conn:
            return fn(conn)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"{what} {engine.url.render_as_string(hide_password=True)}: {reason(exc)}") from None


class Database:
    """One component of a project database (the ledger, the posts, the forms...): opening it
    connects and brings its schema current; each call is one transaction, and whatever
    SQLAlchemy raises becomes one ``error`` naming the database (password hidden).

    A subclass names its component: ``what`` (in errors), ``component`` (its row in
    ``sa_hygiene_schema``), ``metadata`` (its tables) and ``upgrades`` (``ensure_schema``'s)."""

    what: ClassVar[str]
    component: ClassVar[str]
    metadata: ClassVar[MetaData]
    upgrades: ClassVar[dict[int, Upgrade]] = {}
    error: ClassVar[type[DatabaseError]] = DatabaseError

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = connect(url, self.what)
        ensure_schema(self.engine, self.what, self.component, self.metadata, self.upgrades)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fail(self, exc: SQLAlchemyError) -> DatabaseError:
        return self.error(f"{self.what} {safe_url(self.url)}: {reason(exc)}")

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None

    def _run(self, fn: Callable[[Connection], Any]) -> Any:
        with self._begin() as conn:
            return fn(conn)
