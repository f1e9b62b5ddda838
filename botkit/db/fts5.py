"""SQLite's search of messages by their words: migration 18's FTS5 index, `messages_fts`
(external content: the words of `messages.content`, kept in step by triggers and, for
new messages, by each write transaction: `Pending`).

FTS5 finds the messages; the dashboard wants their threads, in the page's order. Reading
the thread of each message found costs a look-up in `messages` (a couple of µs): nothing
for a rare word, 60 ms for one that 30,000 of a million messages hold. So a search
first counts its messages, up to FEW. Up to FEW, their threads are read, then ordered.
Past FEW, so many threads hold the words that the page fills at once the other way
round: the threads are walked in the page's order, and each one's message ids (an index
of them) looked up in the set of those FTS5 found, until the page is full. (A word that
many messages hold in fewer threads than a page walks them all: a few hundred ms a
million messages, still less than reading every message's text.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import Database

FEW = 5000
MATCHES = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?"
THREADS = f"t.id IN (SELECT thread_id FROM messages WHERE id IN ({MATCHES}))"
# INDEXED BY and the + before m.id: the thread's messages from messages_thread, each
# checked against the set, rather than the set's every message checked for the thread.
WALK = f"""EXISTS (SELECT 1 FROM messages m INDEXED BY messages_thread
                   WHERE m.thread_id = t.id AND +m.id IN ({MATCHES}))"""


async def text_search(db: Database, words: Sequence[str]) -> tuple[str, list[Any]]:
    """A condition on threads `t` with a message holding every one of `words`, and
    its parameters: the form that is quicker for how many messages hold them."""
    query = fts5_query(words)
    found = await db.fetchval(f"SELECT count(*) FROM ({MATCHES} LIMIT ?)", (query, FEW + 1))
    return (THREADS if found <= FEW else WALK), [query]


def fts5_query(words: Sequence[str]) -> str:
    """FTS5's query for messages that hold every one of `words`, each the start of a
    word: each is a quoted string (nothing in it is syntax; a `"` in it is doubled),
    which FTS5 splits the way it split the messages, into a phrase whose last token is
    a prefix; phrases side by side must all match."""
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words)


class Pending:
    """The messages inserted but not indexed yet (migration 19's `messages_fts_pending`),
    indexed in one statement at the end of each write transaction, before it commits.
    One per writer connection, used on its thread only."""

    FLUSH = (
        """INSERT INTO messages_fts (rowid, content)
           SELECT m.id, m.content FROM messages_fts_pending p JOIN messages m ON m.id = p.id""",
        "DELETE FROM messages_fts_pending",
    )

    def __init__(self) -> None:
        self.ready = False  # whether the database has the table (migration 19 on)

    def index(self, conn: sqlite3.Connection) -> None:
        """Index the messages noted in this transaction (or left by another program)."""
        if not self.ready:
            found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
            self.ready = conn.execute(found, ("messages_fts_pending",)).fetchone() is not None
            if not self.ready:
                return
        for statement in self.FLUSH:
            conn.execute(statement)
