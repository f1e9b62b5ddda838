"""Search by text (`q=`) through each engine's full-text index: which messages a query
finds, alike on SQLite and PostgreSQL; that no input is search syntax or an error; and
that the index keeps in step with every write, and is filled for a database migrated
from before it (migration 18)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator

import pytest
from conftest import ROOT, rows
from test_dashboard_search import client

from botkit.db import Database, Tx, is_url
from botkit.db.fts5 import FEW
from botkit.db.postgres import MANY
from botkit.migrations import MIGRATIONS, migrate
from botkit.search import MAX_QUERY, filters, text_words
from botkit.store import Store
from botkit.testing import Harness

pytestmark = pytest.mark.backends

STAMP = "2026-03-01T09:00:00.000000Z"
# One conversation a handset, each with one message, as a handset or a bot wrote it.
SAID = {
    "+61400000001": "Can I get a REFUND for my last order?",
    "+61400000002": "Your refund is on its way.",
    "+61400000003": "Zoë 😊 you're great",
    "+61400000004": "e-mail me at ada@example.com, it's 3.5 stars",
    "+61400000005": "李小龙",
    "+61400000006": "Ada is running late",
    "+61400000007": 'He said "AND OR NOT NEAR(x, y)" * \' to me',
    "+61400000008": "naïve café",
}


async def add_thread(tx: Tx, handset: str, *texts: str) -> int:
    """A conversation of `handset` with the hello bot, with an MO for each of `texts`."""
    thread_id = await tx.fetchval(
        """INSERT INTO threads (bot, handset, address, created_at, updated_at)
           VALUES ('hello', ?, '4433', ?, ?) RETURNING id""",
        (handset, STAMP, STAMP),
    )
    for text in texts:
        await add_message(tx, thread_id, handset, text)
    return thread_id


async def add_message(tx: Tx, thread_id: int | None, handset: str, text: str) -> int:
    return await tx.fetchval(
        """INSERT INTO messages (direction, thread_id, handset, address, content, encoding,
               status, created_at, updated_at)
           VALUES ('mo', ?, ?, '4433', ?, 'UCS-2', 'handled', ?, ?) RETURNING id""",
        (thread_id, handset, text, STAMP, STAMP),
    )


async def found(db: Database, q: str) -> list[str]:
    """The handsets of the conversations `q=` finds, as the dashboard asks the store."""
    threads, _ = await Store(db).conversations.page(None, filters({"q": q}))
    return sorted(row["handset"] for row in threads)


@pytest.fixture
async def db(database: str) -> AsyncIterator[Database]:
    """A migrated database with the conversations of SAID."""
    db = await Database.open(database)
    await migrate(db)

    async def fill(tx: Tx) -> None:
        for handset, text in SAID.items():
            await add_thread(tx, handset, text)

    await db.write(fill)
    yield db
    await db.close()


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("refund", ["+61400000001", "+61400000002"]),  # any case
        ("ReFuNd", ["+61400000001", "+61400000002"]),
        ("REF", ["+61400000001", "+61400000002"]),  # the start of a word
        ("fund", []),  # not the middle of one
        ("refund order", ["+61400000001"]),  # every word, in one message
        ("order refund", ["+61400000001"]),  # in any order
        ("refund refund REFUND", ["+61400000001", "+61400000002"]),
        ("refund zebra", []),
        ("zebra", []),
        ("late ada", ["+61400000006"]),
        ("zoë", ["+61400000003"]),
        ("ZOË", ["+61400000003"]),  # case of any letter, not only ASCII
        ("zoe", []),  # accents count
        ("café", ["+61400000008"]),
        ("cafe", []),
        ("you", ["+61400000002", "+61400000003"]),
        ("e-mail", ["+61400000004"]),
        ("ada", ["+61400000004", "+61400000006"]),  # a word, or an e-mail address's start
        ("3.5", ["+61400000004"]),
        ("李", ["+61400000005"]),
        ("😊", []),  # no word: nothing
    ],
)
async def test_a_text_finds_the_messages_that_hold_its_words(db, q, expected):
    assert await found(db, q) == expected


QUOTED, ADA = ["+61400000007"], ["+61400000004", "+61400000006"]


async def test_the_engines_differ_only_where_search_py_says(db):
    """A word with punctuation inside (you're) is its parts side by side, on both
    engines; PostgreSQL takes every part as the start of a word (your refund), SQLite
    the last only. PostgreSQL keeps an e-mail address as one word, SQLite splits it."""
    postgresql = db.dialect == "postgresql"
    assert await found(db, "you're") == (
        ["+61400000002", "+61400000003"] if postgresql else ["+61400000003"]
    )
    assert await found(db, "you're great") == ["+61400000003"]
    assert await found(db, "'re") == ["+61400000001", "+61400000002", "+61400000003"]
    assert await found(db, "ada@example.com") == ["+61400000004"]
    assert await found(db, "example") == ([] if postgresql else ["+61400000004"])


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ('"', []),
        ("'", []),
        ("*", []),
        ("?!", []),
        ("\\", []),
        ("\\'", []),
        ("!(&|", []),
        ("\x00", []),
        ("NEAR(", QUOTED),  # a word, as the message holds it
        ("AND OR", QUOTED),
        ("NOT", QUOTED),
        ('"AND"', QUOTED),
        ("near(x", QUOTED),
        ("x' OR '1'='1", []),
        ('" OR 1=1 --', []),
        ("ada:*", ADA),
        ("^ada", ADA),
        ("ada*", ADA),
        ("a\x00da", []),  # two words, a and da
        ("content:ada", []),  # no column filter: the phrase "content ada"
        ("{content}: ada", []),
        ("*" * MAX_QUERY, []),
        ("'" * MAX_QUERY, []),
        ("NEAR(" * (MAX_QUERY // 5), []),  # one word: NEAR forty times in a row
        (("a" * 39 + " ") * 5, []),
        (" ".join("ab"[n % 2] + str(n) for n in range(MAX_QUERY // 4)), []),  # 50 words
    ],
)
async def test_no_input_is_search_syntax_or_an_error(db, q, expected):
    """Quotes, operators and column filters are text; punctuation alone finds nothing;
    the longest query taken (MAX_QUERY characters) is no error either."""
    assert len(q) <= MAX_QUERY
    assert await found(db, q) == expected
    if not text_words(q):
        assert expected == []


async def test_a_query_of_operators_is_text_on_the_page_and_in_the_api(database):
    async with Harness(ROOT / "bots", ROOT / "templates", db=database) as harness:
        await harness.phone("+61400000007").send('said "AND OR NOT NEAR(x, y)"')
        await harness.phone("+61400000008").send("hello")
        async with client(harness) as c:
            for q, expected in (
                ("NEAR(", ["+61400000007"]),
                ('"and', ["+61400000007"]),
                ("'", []),
                ("*", []),
                ("x" * 40 + " " + "y" * 40, []),
            ):
                page = await c.get("/dashboard/", params={"q": q})
                assert page.status_code == 200, (q, page.text)
                api = await c.get("/api/conversations", params={"q": q})
                assert api.status_code == 200, (q, api.text)
                assert [r["handset"] for r in api.json()["conversations"]] == expected, q
                if not expected:
                    assert "No conversations match." in page.text


async def test_a_number_still_searches_handsets_not_text(db):
    async def add(tx: Tx) -> None:
        await add_thread(tx, "+61412345678", "call me on 0400000001")

    await db.write(add)
    assert await found(db, "0400000001") == ["+61400000001"]  # the handset, not the text
    assert await found(db, "345 678") == ["+61412345678"]
    assert await found(db, "call 0400000001") == ["+61412345678"]  # a text with a number


async def test_what_a_transaction_writes_is_found_once_it_commits(db):
    async def write(tx: Tx) -> int:
        thread_id = await add_thread(tx, "+61400000009", "parking was impossible")
        await add_message(tx, thread_id, "+61400000009", "and the queue long")
        return thread_id

    thread_id = await db.write(write)
    assert await found(db, "parking") == ["+61400000009"]
    assert await found(db, "queue") == ["+61400000009"]

    async def edit(tx: Tx) -> None:
        changed = await tx.execute(
            "UPDATE messages SET content = 'the wait was short' WHERE content LIKE 'parking%'"
        )
        assert changed == 1
        assert (
            await tx.execute(
                "UPDATE messages SET status = 'failed' WHERE thread_id = ?", (thread_id,)
            )
            == 2
        )

    await db.write(edit)
    assert await found(db, "parking") == []
    assert await found(db, "wait short") == ["+61400000009"]
    assert await found(db, "queue") == ["+61400000009"]  # a status change keeps the words

    async def undone(tx: Tx) -> None:
        await add_thread(tx, "+61400000010", "a secret never committed")
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await db.write(undone)
    assert await found(db, "secret") == []

    async def remove(tx: Tx) -> None:
        assert await tx.execute("DELETE FROM messages WHERE thread_id = ?", (thread_id,)) == 2

    await db.write(remove)
    assert await found(db, "wait") == [] and await found(db, "queue") == []
    assert await found(db, "refund") == ["+61400000001", "+61400000002"]


async def test_a_message_changed_before_its_transaction_ends_is_found_as_committed(db, database):
    """SQLite indexes the messages a transaction inserted at its end (migration 19): one
    changed, renumbered or deleted before then is found as it was committed, or not at
    all; writes batched into one transaction are all indexed."""

    async def write(tx: Tx) -> None:
        await add_thread(tx, "+61400000011", "first draft", "gone soon", "moved on")
        await tx.execute(
            "UPDATE messages SET content = 'final words' WHERE content = 'first draft'"
        )
        await tx.execute("DELETE FROM messages WHERE content = 'gone soon'")
        # Not something botkit does, but the index must follow it: a new id.
        await tx.execute("UPDATE messages SET id = id + 1000 WHERE content = 'moved on'")

    await db.write(write)
    assert await found(db, "final") == ["+61400000011"]
    assert await found(db, "moved") == ["+61400000011"]
    assert await found(db, "draft") == [] and await found(db, "gone") == []

    async def move_again(tx: Tx) -> None:  # now that it is indexed
        await tx.execute("UPDATE messages SET id = id + 1000 WHERE content = 'moved on'")

    await db.write(move_again)
    assert await found(db, "moved") == ["+61400000011"]
    handsets = [f"+6140000002{i}" for i in range(5)]
    await asyncio.gather(
        *(db.write(lambda tx, h=h: add_thread(tx, h, "batched together")) for h in handsets)
    )
    assert await found(db, "batched") == handsets
    if not is_url(database):
        assert rows(database, "SELECT * FROM messages_fts_pending") == []
        check = "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')"
        assert rows(database, check) == []  # raises if the index and the messages disagree


async def test_a_message_another_program_inserts_is_indexed_by_the_next_write(tmp_path):
    path = str(tmp_path / "botkit.db")
    db = await Database.open(path)
    try:
        await migrate(db)
        with contextlib.closing(sqlite3.connect(path)) as other, other:
            other.execute(
                """INSERT INTO messages (direction, handset, content, encoding, status,
                       created_at, updated_at)
                   VALUES ('mo', '+61400000030', 'from a script', 'GSM-7', 'received', ?, ?)""",
                (STAMP, STAMP),
            )
        assert len(rows(path, "SELECT * FROM messages_fts_pending")) == 1
        await db.write(lambda tx: add_thread(tx, "+61400000031", "from the app"))
        assert rows(path, "SELECT * FROM messages_fts_pending") == []
        matches = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?"
        assert len(rows(path, matches, ("script",))) == 1
    finally:
        await db.close()


async def test_a_message_the_app_stores_is_found_when_its_thread_is(database):
    """An MO is stored before it has a thread (inbox), and given one when handled: it
    is found from then on, by the thread's handset."""
    async with Harness(ROOT / "bots", ROOT / "templates", db=database) as harness:
        phone = harness.phone("+61400000011")
        await phone.send("HELLO")
        await phone.send("Grace Hopper")
        db = harness.runtime.store.db
        assert await found(db, "hopper") == ["+61400000011"]
        assert await found(db, "nice meet grace") == ["+61400000011"]  # the bot's reply


async def test_an_insert_counts_its_own_row_not_the_index_rows_it_writes(db):
    """SqliteTx.execute counts the statement's rows (rowcount): the index's trigger
    writes rows of its own, which SQLite's total_changes would count too."""

    async def insert(tx: Tx) -> int:
        return await tx.execute(
            """INSERT INTO messages (direction, handset, content, encoding, status,
                   created_at, updated_at)
               VALUES ('mo', '+61400000012', 'counted once', 'GSM-7', 'received', ?, ?)""",
            (STAMP, STAMP),
        )

    assert await db.write(insert) == 1


async def test_migration_18_indexes_the_messages_of_a_database_from_before_it(database):
    db = await Database.open(database)
    try:
        before = tuple(m for m in MIGRATIONS if m.version < 18)
        assert await migrate(db, before) == [m.version for m in before]

        async def fill(tx: Tx) -> None:
            for handset, text in SAID.items():
                await add_thread(tx, handset, text, "and another message")
            await add_message(tx, None, "+61400000013", "refund please")  # not handled yet

        await db.write(fill)
        assert await migrate(db) == [m.version for m in MIGRATIONS if m.version >= 18]
        assert await found(db, "refund") == ["+61400000001", "+61400000002"]
        assert await found(db, "another") == sorted(SAID)
        assert await found(db, "李") == ["+61400000005"]

        async def add(tx: Tx) -> None:  # and it keeps in step from then on
            await add_thread(tx, "+61400000014", "refunded at last")

        await db.write(add)
        assert await found(db, "refund") == ["+61400000001", "+61400000002", "+61400000014"]
    finally:
        await db.close()
    if not is_url(database):
        check = "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')"
        assert rows(database, check) == []  # raises if the index and the messages disagree


async def test_a_word_many_messages_hold_pages_as_a_rare_one_does(database):
    """Past FEW messages (db/fts5.py) SQLite walks the threads instead of reading the
    thread of each message found, and so does PostgreSQL past MANY as its planner
    estimates them (db/postgres.py): the same conversations, in the same pages."""
    db = await Database.open(database)
    try:
        await migrate(db)
        threads = 70
        handsets = [f"+6141000{n:04d}" for n in range(threads)]

        async def fill(tx: Tx) -> None:
            ids = []
            for n, handset in enumerate(handsets):
                ids.append(await add_thread(tx, handset, *(["order"] if n % 7 == 0 else [])))
                stamp = f"2026-03-01T10:{n // 60:02d}:{n % 60:02d}.000000Z"
                await tx.execute("UPDATE threads SET updated_at = ? WHERE id = ?", (stamp, ids[-1]))
            # Many messages, one statement: message i in thread i mod 70, with one of
            # 150 words besides (PostgreSQL estimates a prefix's messages from the
            # statistics of its index only when they count 100 words or more).
            await tx.execute(
                """WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
                   INSERT INTO messages (direction, thread_id, handset, address, content,
                       encoding, status, created_at, updated_at)
                   SELECT 'mo', ? + i % ?, '+61400000000', '4433',
                       'a refund please w' || CAST(i % 150 AS TEXT), 'GSM-7', 'handled', ?, ?
                   FROM n""",
                (max(FEW, MANY) * 11 // 10, ids[0], threads, STAMP, STAMP),
            )

        await db.write(fill)
        await db.write(lambda tx: tx.execute("ANALYZE"))  # the planner's statistics
        newest_first = handsets[::-1]
        with_order = [h for h in newest_first if handsets.index(h) % 7 == 0]
        for q, expected in (("refund", newest_first), ("order", with_order)):
            shown, after = [], None
            while True:
                page, after = await Store(db).conversations.page(after, filters({"q": q}))
                shown += [row["handset"] for row in page]
                if after is None:
                    break
            assert shown == expected, q
        walks = [(await db.text_search(text_words(q)))[0] for q in ("refund", "order")]
        assert ["EXISTS" in condition for condition in walks] == [True, False]
    finally:
        await db.close()
