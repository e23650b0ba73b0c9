"""The machine's PostgreSQL and Redis, shared by concurrent test runs: each test takes a
database (or a Redis db number) of its own and removes it afterwards, also after a failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
REDIS = ("127.0.0.1", 6379)
_CLAIM = "sa_hygiene_test_claim"


@contextmanager
def postgres_database(prefix: str = "sa_hygiene_test") -> Iterator[str]:
    """A new database; yields its name."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextmanager
def redis_database() -> Iterator[int]:
    """An empty Redis db number (1-15; 0 is everyone's default), claimed with a key so that
    concurrent runs never share one, and flushed afterwards."""
    import redis

    token = uuid.uuid4().hex
    for number in range(1, 16):
        client = redis.Redis(*REDIS, db=number)
        if client.dbsize() == 0 and client.set(_CLAIM, token, nx=True):
            break
        client.close()
    else:
        raise RuntimeError("no empty Redis database left (1-15)")
    try:
        yield number
    finally:
        client.flushdb()
        client.close()
