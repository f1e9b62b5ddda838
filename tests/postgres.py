"""A throwaway PostgreSQL: a cluster made by `initdb` in a temporary folder, started by
`pg_ctl` on a free loopback port, removed at the end.

`running_cluster()` is the plain context manager; the session fixture `postgres` wraps
it for the tests (fsync off: their data need not survive a power cut), the fixture
`cluster` for a test that stops and starts a server of its own, and
bench/postgres_pipeline.py runs it with fsync on, durable as in production.

The server binaries come from the machine (Debian's `postgresql` package; `.ci/run`
installs it where it is missing). PostgreSQL refuses to run as root, so as root the
cluster runs as `nobody`. Each test asks `fresh_database()` for a database of its own.
Where there are no binaries the tests that need them are skipped, except in CI.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import free_port

USER = "botkit"


class ClusterError(Exception):
    """The cluster could not be made or started (no binaries, or a tool failed)."""


@dataclass(frozen=True)
class Cluster:
    """A running PostgreSQL server: where it listens and how to log in."""

    port: int
    password: str
    data: Path  # its data folder
    pg_ctl: tuple[str, ...] = ()  # pg_ctl (as the user it runs as), its data folder named
    options: str = ""  # the server's options, as started

    def stop(self) -> None:
        """Stop the server as an administrator would (`pg_ctl stop -m fast`: clients are
        disconnected, what they had not committed rolled back)."""
        _run([*self.pg_ctl, "-m", "fast", "stop"])

    def start(self) -> None:
        """Start it again, as it was started, and wait until it takes connections."""
        log = str(self.data.parent / "log")
        _run([*self.pg_ctl, "-l", log, "-o", self.options, "-w", "start"])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def pid(self) -> int:
        """The server's main process (the postmaster), parent of every backend."""
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on the PATH, or Debian's newest version."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL server for the whole test session."""
    if binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL's initdb is missing in CI: .ci/run must install postgresql")
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    with running_cluster(fsync=False) as cluster:
        yield cluster


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A PostgreSQL server of the test's own, to stop and start (skipped, or failed in
    CI, as the shared one is where there are no server binaries)."""
    request.getfixturevalue("postgres")
    with running_cluster(fsync=False) as cluster:
        yield cluster


@contextlib.contextmanager
def running_cluster(fsync: bool) -> Iterator[Cluster]:
    """A new cluster, running until the block ends, then stopped and removed.

    `fsync`: whether commits wait for the disk (PostgreSQL's default, and what a
    production server does); off, a test session is faster and a power cut would lose
    what it wrote, which for tests does not matter."""
    bin_dir = binaries()
    if bin_dir is None:
        raise ClusterError("PostgreSQL server binaries are not installed (initdb, pg_ctl)")
    folder = Path(tempfile.mkdtemp(prefix="botkit-pg-"))
    as_user = _unprivileged(folder)
    data = folder / "data"
    try:
        password = _initdb(bin_dir, as_user, folder, fsync)
        port = free_port()
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        options += "" if fsync else " -c fsync=off"
        cluster = Cluster(
            port, password, data, (*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)), options
        )
        cluster.start()
        try:
            yield cluster
        finally:
            subprocess.run(
                [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _initdb(bin_dir: Path, as_user: list[str], folder: Path, sync: bool) -> str:
    """Make the cluster in `folder`/data, its superuser `USER` with a new password
    (scram-sha-256 on every connection); the password."""
    password = secrets.token_urlsafe(16)
    (folder / "password").write_text(password)
    _run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", USER,
         "-A", "scram-sha-256", f"--pwfile={folder / 'password'}", "-E", "UTF8",
         *([] if sync else ["--no-sync"])],
    )  # fmt: skip
    return password


def _run(command: list[str]) -> None:
    """Run a PostgreSQL tool; raise ClusterError with what it printed if it fails."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


def _unprivileged(folder: Path) -> list[str]:
    """The command prefix that runs PostgreSQL's tools as a user it accepts (`nobody`
    when we are root, who then owns `folder`); empty when we are not root."""
    if os.geteuid() != 0:
        return []
    shutil.chown(folder, "nobody", "nogroup")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


async def fresh_database(cluster: Cluster) -> str:
    """A new, empty database on `cluster`; its URL."""
    import asyncpg

    name = f"test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(cluster.url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return cluster.url(name)


async def drop_database(cluster: Cluster, url: str) -> None:
    """Drop the database at `url`, closing what is still connected to it."""
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(cluster.url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
