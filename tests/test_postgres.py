"""The throwaway PostgreSQL the tests start (issue 8's backend will run on it)."""

from __future__ import annotations

import asyncpg
from postgres import fresh_database


async def test_a_throwaway_cluster_takes_connections_with_a_password(postgres):
    url = await fresh_database(postgres)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT current_user") == "botkit"
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        await conn.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        assert await conn.fetchval("INSERT INTO t VALUES (1) RETURNING id") == 1
    finally:
        await conn.close()
    wrong = postgres.url().replace(postgres.password, "wrong")
    try:
        await asyncpg.connect(wrong)
    except asyncpg.InvalidPasswordError:
        pass
    else:
        raise AssertionError("a wrong password was accepted")


async def test_each_test_gets_a_database_of_its_own(postgres):
    first, second = await fresh_database(postgres), await fresh_database(postgres)
    assert first != second
