"""Where the app's databases live while bench/pipeline.py measures: SQLite files, or a
throwaway PostgreSQL server that several app processes share.

    with backend_for("postgresql", workdir) as backend:
        with backend.database(rate) as db:   # a path or a URL, for `botkit run --db`
            backend.rows(db, "SELECT count(*) FROM inbox")

The PostgreSQL server is a throwaway cluster, made for the benchmark and removed after
it, with fsync on (PostgreSQL's default): each commit waits until its WAL is on the
disk, as a production server's does and as botkit's SQLite does with synchronous=FULL,
so that the two backends pay the same durability. Each rate gets a fresh database.

The cluster comes from tests/postgres.py (`running_cluster`), the one the tests' fixture
`postgres` runs: one way to make a throwaway PostgreSQL, rather than two to keep in step.
tests/ is put at the end of sys.path to import it (the benchmarks need the dev
dependencies, pytest among them, anyway); bench/'s own modules keep their names.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import asyncpg
import cpu
from common import ROOT, fresh_sqlite, pss_mib

from botkit.db.postgres import connect_options

Rows = Callable[[str], list[tuple[Any, ...]]]  # a query's rows, from the app's database


class Backend(Protocol):
    """Where the app's databases live: SQLite files, or a PostgreSQL server."""

    name: str

    def database(
        self, rate: float, stem: str = "pipeline"
    ) -> contextlib.AbstractContextManager[str]:
        """A new, empty database for the run at `rate`: its path or URL (for SQLite,
        `stem`-`rate`.db)."""
        ...

    def rows(self, db: str, sql: str) -> list[tuple[Any, ...]]:
        """The rows of a query on `db`."""
        ...

    def poller(self, db: str) -> contextlib.AbstractContextManager[Rows]:
        """Queries on `db` over one connection, kept open for many (read-only where
        the database allows); use it in the thread that opened it."""
        ...

    def groups(self) -> dict[str, list[int]]:
        """The database server's processes, by name, for the CPU figures (none for SQLite)."""
        ...

    def memory_mib(self) -> float | None:
        """The database server's memory now, in MiB (None for SQLite: it is the app's)."""
        ...

    def describe(self) -> str:
        """The database and its durability, for the table's heading."""
        ...


class Sqlite:
    """The app's database as a SQLite file in the work folder, one per rate."""

    name = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    @contextlib.contextmanager
    def database(self, rate: float, stem: str = "pipeline") -> Iterator[str]:
        yield str(fresh_sqlite(self.workdir / f"{stem}-{rate:g}.db"))

    def rows(self, db: str, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            return conn.execute(sql).fetchall()

    @contextlib.contextmanager
    def poller(self, db: str) -> Iterator[Rows]:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            yield lambda sql: conn.execute(sql).fetchall()

    def groups(self) -> dict[str, list[int]]:
        return {}

    def memory_mib(self) -> float | None:
        return None

    def describe(self) -> str:
        return (
            f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL: each commit waits "
            "for the disk"
        )


def cluster_module() -> ModuleType:
    """tests/postgres.py, imported with tests/ at the end of sys.path."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.append(tests)
    return importlib.import_module("postgres")


class Postgres:
    """Databases on one running cluster, one per rate, dropped after it."""

    name = "postgresql"

    def __init__(self, cluster: Any, helpers: ModuleType) -> None:
        self.cluster = cluster  # tests/postgres.py's Cluster
        self._helpers = helpers

    @contextlib.contextmanager
    def database(self, rate: float, stem: str = "pipeline") -> Iterator[str]:
        url = asyncio.run(self._helpers.fresh_database(self.cluster))
        try:
            yield url
        finally:
            asyncio.run(self._helpers.drop_database(self.cluster, url))

    def rows(self, db: str, sql: str) -> list[tuple[Any, ...]]:
        return asyncio.run(_fetch(db, sql))

    @contextlib.contextmanager
    def poller(self, db: str) -> Iterator[Rows]:
        with asyncio.Runner() as runner:
            conn = runner.run(asyncpg.connect(**connect_options(db)))
            try:
                yield lambda sql: [tuple(row) for row in runner.run(conn.fetch(sql))]
            finally:
                runner.run(conn.close())

    def groups(self) -> dict[str, list[int]]:
        return {"postgresql": [self.cluster.pid()]}

    def memory_mib(self) -> float | None:
        """The server's processes' proportional memory (PSS: the shared buffers, which
        every backend maps, counted once), summed."""
        return pss_mib(cpu.descendants(self.cluster.pid(), cpu.times().processes))

    def describe(self) -> str:
        [(version, fsync, synchronous, buffers)] = self.rows(
            self.cluster.url(),
            "SELECT current_setting('server_version'), current_setting('fsync'), "
            "current_setting('synchronous_commit'), current_setting('shared_buffers')",
        )
        durable = fsync == "on" and synchronous != "off"
        return (
            f"PostgreSQL {version.split()[0]}, fsync {fsync}, synchronous_commit "
            f"{synchronous}, shared_buffers {buffers}: "
            + (
                "each commit waits for the disk, as SQLite's synchronous=FULL does"
                if durable
                else "commits do not wait for the disk"
            )
        )


async def _fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of `sql` on the database at `url`, over a connection of their own."""
    conn = await asyncpg.connect(**connect_options(url))
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


@contextlib.contextmanager
def cluster_backend() -> Iterator[Postgres]:
    """A throwaway cluster with fsync on, as a backend, until the block ends."""
    helpers = cluster_module()
    with helpers.running_cluster(fsync=True) as cluster:
        yield Postgres(cluster, helpers)


def unavailable(name: str) -> str | None:
    """Why the backend called `name` cannot run on this machine, if it cannot."""
    if name == "postgresql" and cluster_module().binaries() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql"
    return None


@contextlib.contextmanager
def backend_for(name: str, workdir: Path) -> Iterator[Backend]:
    """The backend called `name`: SQLite files in `workdir`, or a PostgreSQL cluster
    started for the benchmark and removed afterwards."""
    if name == "sqlite":
        yield Sqlite(workdir)
        return
    with cluster_backend() as backend:
        yield backend
