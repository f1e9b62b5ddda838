"""The schema as numbered migrations, each recorded in the transaction that applies it.

A migration is a list of statements in SQLite's dialect, which the PostgreSQL backend
translates (db/postgres.py), and where the two differ beyond translating (full-text
search: FTS5 there, a GIN index here) a list in PostgreSQL's own; never edit one that
has shipped: add the next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .clock import stamp, system_clock
from .db import Database, Tx

log = logging.getLogger("botkit.migrations")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    #: Run instead of `statements` on PostgreSQL, as they are (None: `statements`).
    postgresql: tuple[str, ...] | None = None

    def statements_for(self, dialect: str) -> tuple[str, ...]:
        """The statements to run on a database of `dialect` (Database.dialect)."""
        if dialect == "postgresql" and self.postgresql is not None:
            return self.postgresql
        return self.statements


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "messages, threads, inbox, outbox, deliveries",
        (
            # A conversation between one handset and one of our addresses, owned by one bot.
            """CREATE TABLE threads (
                id INTEGER PRIMARY KEY,
                bot TEXT NOT NULL,
                handset TEXT NOT NULL,
                address TEXT NOT NULL,
                state TEXT,
                data TEXT NOT NULL DEFAULT '{}',
                status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                closed_at TEXT
            )""",
            "CREATE INDEX threads_open ON threads (handset, address, id) WHERE status = 'open'",
            # Every MO and MT, with every field the gateway knows of it.
            # MO status: received -> handled | failed.
            # MT status: queued -> sending -> accepted | failed | uncertain.
            """CREATE TABLE messages (
                id INTEGER PRIMARY KEY,
                direction TEXT NOT NULL CHECK (direction IN ('mo', 'mt')),
                gateway_id INTEGER,
                thread_id INTEGER REFERENCES threads (id),
                handset TEXT NOT NULL,
                address TEXT,
                content TEXT NOT NULL,
                encoding TEXT NOT NULL,
                segments INTEGER NOT NULL DEFAULT 1,
                operator TEXT,
                reply_to INTEGER,
                reference TEXT,
                message_class TEXT,
                source TEXT,
                mask TEXT,
                expires TEXT,
                template TEXT,
                status TEXT NOT NULL,
                delivery TEXT,
                error TEXT,
                uncertain INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            # The gateway's id makes an MO unique: a repeated callback is stored once.
            """CREATE UNIQUE INDEX messages_mo_gateway_id
                ON messages (gateway_id) WHERE direction = 'mo'""",
            "CREATE INDEX messages_mt_gateway_id ON messages (gateway_id) WHERE direction = 'mt'",
            "CREATE INDEX messages_thread ON messages (thread_id, id)",
            "CREATE INDEX messages_handset ON messages (handset, id)",
            # MOs stored but not yet handled; a row is a claim ticket, deleted when handled.
            """CREATE TABLE inbox (
                message_id INTEGER PRIMARY KEY REFERENCES messages (id),
                handset TEXT NOT NULL,
                claimed_until TEXT,
                attempts INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX inbox_handset ON inbox (handset, message_id)",
            # MTs not yet handed to the gateway; deleted once the gateway answered for good.
            """CREATE TABLE outbox (
                message_id INTEGER PRIMARY KEY REFERENCES messages (id),
                state TEXT NOT NULL CHECK (state IN ('queued', 'sending')),
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at TEXT NOT NULL,
                claimed_until TEXT,
                last_error TEXT
            )""",
            "CREATE INDEX outbox_due ON outbox (state, next_attempt_at, message_id)",
            # Every delivery receipt, kept even when it names no MT of ours.
            """CREATE TABLE deliveries (
                id INTEGER PRIMARY KEY,
                gateway_id INTEGER NOT NULL,
                status TEXT NOT NULL,
                reference TEXT,
                message_id INTEGER REFERENCES messages (id),
                received_at TEXT NOT NULL,
                UNIQUE (gateway_id, status)
            )""",
            "CREATE INDEX deliveries_message ON deliveries (message_id, id)",
        ),
    ),
    Migration(
        2,
        "outbox: the handset, so that one handset's MTs go out in order",
        (
            "ALTER TABLE outbox ADD COLUMN handset TEXT",
            """UPDATE outbox SET handset =
                   (SELECT handset FROM messages WHERE messages.id = outbox.message_id)""",
            "CREATE INDEX outbox_handset ON outbox (handset, message_id)",
        ),
    ),
    Migration(
        3,
        "consent: suppressions and the ledger of every opt-in and opt-out",
        (
            # Who must not be sent to, from which of our addresses ('*': from any).
            """CREATE TABLE suppressions (
                handset TEXT NOT NULL,
                address TEXT NOT NULL,
                since TEXT NOT NULL,
                PRIMARY KEY (handset, address)
            )""",
            # Every change of consent, never updated or deleted: the audit trail.
            """CREATE TABLE consent (
                id INTEGER PRIMARY KEY,
                handset TEXT NOT NULL,
                address TEXT NOT NULL,
                action TEXT NOT NULL CHECK (action IN ('opt-in', 'opt-out')),
                keyword TEXT,
                source TEXT NOT NULL,
                message_id INTEGER REFERENCES messages (id),
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX consent_handset ON consent (handset, id)",
            # An MT that may go to a suppressed handset: only a STOP's one confirmation.
            "ALTER TABLE messages ADD COLUMN exempt INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        4,
        "timers: reminders and expiries that fire once, after a restart too",
        (
            """CREATE TABLE timers (
                id INTEGER PRIMARY KEY,
                thread_id INTEGER NOT NULL REFERENCES threads (id),
                handset TEXT NOT NULL,
                name TEXT NOT NULL,
                data TEXT NOT NULL DEFAULT '{}',
                due_at TEXT NOT NULL,
                state TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'fired', 'cancelled', 'failed')),
                claimed_until TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                error TEXT,
                created_at TEXT NOT NULL,
                fired_at TEXT
            )""",
            "CREATE INDEX timers_due ON timers (due_at, id) WHERE state = 'pending'",
            "CREATE INDEX timers_thread ON timers (thread_id) WHERE state = 'pending'",
        ),
    ),
    Migration(
        5,
        "surveys: each respondent's status and answers",
        (
            # Each survey's questions as last run (id, kind, countable values), for results.
            """CREATE TABLE surveys (
                name TEXT PRIMARY KEY,
                questions TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            # A respondent: a thread a survey ran in.
            """CREATE TABLE survey_responses (
                survey TEXT NOT NULL,
                thread_id INTEGER NOT NULL REFERENCES threads (id),
                status TEXT NOT NULL CHECK (status IN ('started', 'completed', 'incomplete')),
                started_at TEXT NOT NULL,
                ended_at TEXT,
                PRIMARY KEY (survey, thread_id)
            )""",
            # The latest answer of a respondent to a question, and the MO that gave it.
            """CREATE TABLE survey_answers (
                survey TEXT NOT NULL,
                thread_id INTEGER NOT NULL REFERENCES threads (id),
                question TEXT NOT NULL,
                value TEXT NOT NULL,
                raw TEXT NOT NULL,
                message_id INTEGER REFERENCES messages (id),
                answered_at TEXT NOT NULL,
                PRIMARY KEY (survey, thread_id, question)
            )""",
        ),
    ),
    Migration(
        6,
        "lists: named subscription lists, their members, and lists in the consent ledger",
        (
            """CREATE TABLE lists (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                description TEXT NOT NULL DEFAULT '',
                created_at TEXT NOT NULL
            )""",
            # A handset's membership of a list, on the address it joined through: its
            # present status only; the consent ledger keeps every change.
            """CREATE TABLE list_members (
                list_id INTEGER NOT NULL REFERENCES lists (id),
                handset TEXT NOT NULL,
                address TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('subscribed', 'unsubscribed')),
                source TEXT NOT NULL,
                since TEXT NOT NULL,
                PRIMARY KEY (list_id, handset)
            )""",
            "CREATE INDEX list_members_handset ON list_members (handset, address)",
            # The list a ledger line subscribes to or unsubscribes from (NULL: the address).
            "ALTER TABLE consent ADD COLUMN list TEXT",
        ),
    ),
    Migration(
        7,
        "broadcasts: one message or conversation per recipient, resumable",
        (
            """CREATE TABLE broadcasts (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL CHECK (kind IN ('template', 'conversation')),
                template TEXT,
                bot TEXT,
                entry TEXT,
                address TEXT NOT NULL,
                expires TEXT,
                created_at TEXT NOT NULL
            )""",
            # One row per recipient, written with its MT (or its conversation's start)
            # in one transaction: a broadcast run again skips those already done.
            """CREATE TABLE broadcast_recipients (
                broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id),
                handset TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('queued', 'skipped')),
                thread_id INTEGER REFERENCES threads (id),
                message_id INTEGER REFERENCES messages (id),
                reason TEXT,
                created_at TEXT NOT NULL,
                PRIMARY KEY (broadcast_id, handset)
            )""",
        ),
    ),
    Migration(
        8,
        "consent: the numbers a handset opted back in to after opting out of all",
        (
            # STOPALL then START on one number: suppressed everywhere but there.
            """CREATE TABLE suppression_exceptions (
                handset TEXT NOT NULL,
                address TEXT NOT NULL,
                since TEXT NOT NULL,
                PRIMARY KEY (handset, address)
            )""",
        ),
    ),
    Migration(
        9,
        "threads: most recently active first, for the dashboard's conversations",
        ("CREATE INDEX threads_recent ON threads (updated_at, id)",),
    ),
    Migration(
        10,
        "dashboard: the session key, operators' replies, threads paused for an operator",
        (
            # Keys the app makes once and keeps (the dashboard's session signing key).
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            # Who sent an MT from the dashboard (NULL: the bot).
            "ALTER TABLE messages ADD COLUMN sent_by TEXT",
            # An operator has taken the thread over: its MOs are stored but no bot answers.
            "ALTER TABLE threads ADD COLUMN paused_by TEXT",
            "ALTER TABLE threads ADD COLUMN paused_at TEXT",
        ),
    ),
    Migration(
        11,
        "indexes for the dashboard's delivery overview and consent pages",
        (
            "CREATE INDEX messages_created ON messages (created_at, direction)",
            # The condition is store/overview.py's UNDELIVERED, word for word: SQLite uses
            # a partial index only for a query with the same condition.
            """CREATE INDEX messages_undelivered ON messages (id)
                WHERE direction = 'mt' AND (status = 'failed'
                    OR delivery IN ('failed', 'dead', 'rejected', 'expired'))""",
            "CREATE INDEX consent_source ON consent (source, id)",
            "CREATE INDEX suppressions_since ON suppressions (since, handset, address)",
        ),
    ),
    Migration(
        12,
        "several processes: who holds each claim, and the deployment's send slots",
        (
            # The process holding a claim: one whose lease ran out may not commit its work.
            "ALTER TABLE inbox ADD COLUMN claimed_by TEXT",
            "ALTER TABLE timers ADD COLUMN claimed_by TEXT",
            "ALTER TABLE outbox ADD COLUMN claimed_by TEXT",
            # An MO waits while a timer of its handset is being fired (by any process).
            "CREATE INDEX timers_claimed ON timers (handset) WHERE claimed_until IS NOT NULL",
            # The next free send slot (seconds since the epoch, the database server's
            # clock), shared by every process of a PostgreSQL deployment.
            "CREATE TABLE pace (name TEXT PRIMARY KEY, next_at DOUBLE PRECISION NOT NULL)",
        ),
    ),
    Migration(
        13,
        "flags: what was done to keep a callback's message",
        (
            # Comma-separated words (callbacks.py), NULL for none: `reference-truncated`,
            # `reply-to-invalid`, `content-cp1252`, `encoding-unknown`...
            "ALTER TABLE messages ADD COLUMN flags TEXT",
            "ALTER TABLE deliveries ADD COLUMN flags TEXT",
        ),
    ),
    Migration(
        14,
        "broadcasts: the sender mask, so that a resumed broadcast shows the same one",
        ("ALTER TABLE broadcasts ADD COLUMN mask TEXT",),
    ),
    Migration(
        15,
        "threads by our number, for the dashboard's filter by it",
        # A page of one number's conversations is one range of this index, however
        # few of them there are; and the numbers threads are on are read off it.
        ("CREATE INDEX threads_address ON threads (address, updated_at, id)",),
    ),
    Migration(
        16,
        "failed MOs by thread, and threads by handset, for the dashboard",
        (
            # The condition is store/conversations.py's FAILED, word for word: SQLite uses
            # a partial index only for a query with the same condition. Few rows: the
            # filter to threads with a failure reads them all, then pages by threads_recent.
            """CREATE INDEX messages_failed ON messages (thread_id)
                WHERE direction = 'mo' AND status = 'failed'""",
            # A person's page: every thread of one handset, the latest first.
            "CREATE INDEX threads_handset ON threads (handset, updated_at, id)",
        ),
    ),
    Migration(
        17,
        "threads: why each ended (ended, expired, opted_out, operator), for the dashboard",
        ("ALTER TABLE threads ADD COLUMN end_reason TEXT",),
    ),
    Migration(
        18,
        "full-text search of messages, for the dashboard's search by text",
        (
            # The words of every message (botkit/search.py says how they are matched),
            # an index without a copy of the text (external content), kept in step by
            # triggers: in the transaction that writes the message, whoever writes it.
            # remove_diacritics 0: as PostgreSQL's 'simple' configuration, e is not é.
            """CREATE VIRTUAL TABLE messages_fts USING fts5 (
                content, content = 'messages', content_rowid = 'id',
                tokenize = 'unicode61 remove_diacritics 0'
            )""",
            """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
                INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
            END""",
            """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
                INSERT INTO messages_fts (messages_fts, rowid, content)
                    VALUES ('delete', old.id, old.content);
            END""",
            # Only a change of the text: a message's status changes often, its text never.
            """CREATE TRIGGER messages_fts_update AFTER UPDATE OF id, content ON messages BEGIN
                INSERT INTO messages_fts (messages_fts, rowid, content)
                    VALUES ('delete', old.id, old.content);
                INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
            END""",
            "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
        ),
        postgresql=(
            # The same words, in a GIN index of the 'simple' configuration (lower case,
            # no stemming, no stop words: as FTS5's unicode61). The expression is
            # TEXT_THREADS's in db/postgres.py, word for word.
            "CREATE INDEX messages_search ON messages USING GIN (to_tsvector('simple', content))",
        ),
    ),
    Migration(
        19,
        "full-text search: the messages a transaction writes are indexed together at its end",
        (
            # FTS5 writes its index out at every savepoint, and every statement is one: a
            # trigger indexing each message as it is inserted cost 2.5 times what indexing
            # a transaction's messages in one statement at its end costs. So inserting a
            # message notes its id, and every write transaction of the app indexes the ids
            # noted before it commits (db/fts5.py, `Pending`), in step as before.
            "CREATE TABLE messages_fts_pending (id INTEGER PRIMARY KEY)",
            "DROP TRIGGER messages_fts_insert",
            """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
                INSERT INTO messages_fts_pending (id) VALUES (new.id);
            END""",
            # A message not indexed yet is not in the index to delete or change.
            "DROP TRIGGER messages_fts_delete",
            """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
                INSERT INTO messages_fts (messages_fts, rowid, content)
                    SELECT 'delete', old.id, old.content
                    WHERE NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE id = old.id);
                DELETE FROM messages_fts_pending WHERE id = old.id;
            END""",
            # One trigger, its steps in order: a message's index entry is changed only
            # if it has one; a message not indexed yet keeps its note, under its new id.
            "DROP TRIGGER messages_fts_update",
            """CREATE TRIGGER messages_fts_update AFTER UPDATE OF id, content ON messages BEGIN
                INSERT INTO messages_fts (messages_fts, rowid, content)
                    SELECT 'delete', old.id, old.content
                    WHERE NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE id = old.id);
                INSERT INTO messages_fts (rowid, content)
                    SELECT new.id, new.content
                    WHERE NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE id = old.id);
                UPDATE messages_fts_pending SET id = new.id WHERE id = old.id;
            END""",
        ),
        postgresql=(),  # its GIN index is kept by PostgreSQL itself
    ),
    Migration(
        20,
        "dashboard sessions kept in the database, so that logging out ends them",
        (
            # A signed-in browser (botkit/sessions.py). The cookie holds a random id; the
            # row is under its SHA-256, so a reader of the database cannot use it. The
            # credentials are a fingerprint of the login (scrypt, salted with the secret
            # key), so changing the password ends every session.
            """CREATE TABLE dashboard_sessions (
                id_hash TEXT PRIMARY KEY,
                username TEXT NOT NULL,
                csrf TEXT NOT NULL,
                credentials TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        21,
        "contacts: a person per handset, typed fields, and the ledger of every change",
        (
            # A person, keyed by the handset's number: a row once anything was set.
            # timezone NULL: the number's own (botkit/localtime.py number_zone).
            """CREATE TABLE contacts (
                handset TEXT PRIMARY KEY,
                name TEXT,
                language TEXT,
                timezone TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            # A contact's field values, one row each, as canonical text (botkit/fields.py)
            # with the kind it was set as: a filter by field is one range of the index.
            """CREATE TABLE contact_values (
                handset TEXT NOT NULL REFERENCES contacts (handset),
                field TEXT NOT NULL,
                kind TEXT NOT NULL
                    CHECK (kind IN ('text', 'number', 'date', 'datetime', 'bool')),
                value TEXT NOT NULL,
                PRIMARY KEY (handset, field)
            )""",
            "CREATE INDEX contact_values_field ON contact_values (field, value, handset)",
            # Every change of a contact: what, from and to (as stored), how and by whom.
            """CREATE TABLE contact_changes (
                id INTEGER PRIMARY KEY,
                handset TEXT NOT NULL,
                what TEXT NOT NULL,
                old TEXT,
                new TEXT,
                source TEXT NOT NULL,
                actor TEXT,
                at TEXT NOT NULL
            )""",
            "CREATE INDEX contact_changes_handset ON contact_changes (handset, id)",
        ),
    ),
    Migration(
        22,
        "campaign events: timers of a contact, not yet of a thread",
        (
            # SQLite cannot drop a NOT NULL: the table is made anew, as its docs say.
            """CREATE TABLE timers_new (
                id INTEGER PRIMARY KEY,
                thread_id INTEGER REFERENCES threads (id),
                handset TEXT NOT NULL,
                name TEXT NOT NULL,
                data TEXT NOT NULL DEFAULT '{}',
                due_at TEXT NOT NULL,
                state TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'fired', 'cancelled', 'failed')),
                claimed_until TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                error TEXT,
                created_at TEXT NOT NULL,
                fired_at TEXT,
                claimed_by TEXT
            )""",
            """INSERT INTO timers_new (id, thread_id, handset, name, data, due_at, state,
                   claimed_until, attempts, error, created_at, fired_at, claimed_by)
               SELECT id, thread_id, handset, name, data, due_at, state, claimed_until,
                   attempts, error, created_at, fired_at, claimed_by FROM timers""",
            "DROP TABLE timers",
            "ALTER TABLE timers_new RENAME TO timers",
            "CREATE INDEX timers_due ON timers (due_at, id) WHERE state = 'pending'",
            "CREATE INDEX timers_thread ON timers (thread_id) WHERE state = 'pending'",
            "CREATE INDEX timers_claimed ON timers (handset) WHERE claimed_until IS NOT NULL",
            # A contact's campaign events, to move or cancel them.
            """CREATE INDEX timers_campaign ON timers (handset, name)
                WHERE thread_id IS NULL""",
        ),
        postgresql=(
            "ALTER TABLE timers ALTER COLUMN thread_id DROP NOT NULL",
            """CREATE INDEX timers_campaign ON timers (handset, name)
                WHERE thread_id IS NULL""",
        ),
    ),
    Migration(
        23,
        "webhooks: those added with `botkit webhooks add`, and the queue of their deliveries",
        (
            # A webhook added from the command line (those of the settings are not
            # stored). Its secret signs the deliveries, so it is kept as given.
            """CREATE TABLE webhooks (
                id INTEGER PRIMARY KEY,
                url TEXT NOT NULL UNIQUE,
                secret TEXT NOT NULL,
                events TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            # One event for one webhook (named by its URL), written in the transaction
            # that made the event happen; claimed by pushing `due_at` a lease ahead.
            """CREATE TABLE webhook_deliveries (
                id INTEGER PRIMARY KEY,
                event_id TEXT NOT NULL,
                event TEXT NOT NULL,
                url TEXT NOT NULL,
                payload TEXT NOT NULL,
                state TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                due_at TEXT NOT NULL,
                claimed_by TEXT,
                last_status INTEGER,
                last_error TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at) "
            "WHERE state = 'pending'",
            # Every attempt, for the dashboard: its HTTP status, or why it got none.
            """CREATE TABLE webhook_attempts (
                id INTEGER PRIMARY KEY,
                delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id),
                attempt INTEGER NOT NULL,
                status INTEGER,
                error TEXT,
                attempted_at TEXT NOT NULL
            )""",
            "CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id)",
        ),
    ),
)


async def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations the database lacks, in order; return their versions.

    Processes starting together on one database take turns (a lock on PostgreSQL; on
    SQLite one writer at a time, and each migration checks the ledger in its own
    transaction): the first applies them.
    """
    async with db.lock("botkit migrations"):
        await db.write(_create_ledger)
        done = {row[0] for row in await db.fetchall("SELECT version FROM schema_migrations")}
        applied = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            if await db.write(lambda tx, m=migration: _apply(tx, m, db.dialect)):
                log.info("applied migration %d: %s", migration.version, migration.name)
                applied.append(migration.version)
        return applied


async def _create_ledger(tx: Tx) -> None:
    await tx.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )"""
    )


async def _apply(tx: Tx, migration: Migration, dialect: str) -> bool:
    """Apply `migration` unless another process just did; True if this one did."""
    if await tx.fetchval("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)):
        return False
    for statement in migration.statements_for(dialect):
        await tx.execute(statement)
    await tx.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.name, stamp(system_clock())),
    )
    return True
