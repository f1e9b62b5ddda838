"""A large, plausible botkit database for the dashboard benchmark, filled fast.

The schema comes from `migrate()`; the rows then go in with executemany, in large
transactions, without the app: threads of the example bots (hello, optin, survey), MO and
MT messages alternating, with contents, encodings, statuses and delivery receipts as the
app stores them, spread over 90 days, ids in time order, and one long thread. The rows
go in before the migration of the full-text index of messages (TEXT_INDEX), which then
indexes them all at once, as it does those of a database that upgrades to it: a few
seconds for a million messages, where its triggers, a message at a time, take a minute.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botkit.clock import stamp
from botkit.db import Database
from botkit.migrations import MIGRATIONS, migrate
from botkit.progress import progress_bar
from botkit.sms import measure

# Bump when the rows change, so that databases cached under an older fill are rebuilt.
# 2: the full-text index of messages (migration 18) is filled too.
VERSION = 2
# The migration that indexes the words of messages: the rows go in before it.
TEXT_INDEX = 18
DAYS = 90
LONG_THREAD = 5_000
BATCH = 50_000
OPERATORS = ("Telstra", "Optus", "Vodafone")
# Bits of a message's sort key below its time: thread index, then its place in the thread.
SEQ_BITS = 20
THREAD_BITS = 24


@dataclass(frozen=True)
class Profile:
    """What one bot's conversations look like: the first MO and MT, then the others."""

    address: str
    share: float
    state: str
    mo: tuple[str, ...]
    mt: tuple[tuple[str | None, str], ...]  # template (None: literal text), text


PROFILES = {
    "hello": Profile(
        "+61400000100",
        0.5,
        "ask_name",
        (
            "HELLO",
            "Grace",
            "hi",
            "NAME",
            "Ana María",
            "李小龙",
            "Zoë 😊",
            "what can you do?",
            "HEY",
            "Mohammed",
            "can I get a refund for my last order?",
        ),
        (
            ("hello/ask_name.txt", "Hi! I'm the botkit hello bot. What's your name?"),
            (
                "hello/greet.txt",
                "Nice to meet you, Grace! Text HELLO any time and I'll remember you.",
            ),
            (
                "hello/welcome_back.txt",
                "Welcome back, Ana María! Text NAME to change the name I know you by.",
            ),
            ("hello/help.txt", "I didn't catch that. Text one of: HELLO, HI, HEY, NAME"),
            (
                "hello/greet.txt",
                "Nice to meet you, 李小龙! Text HELLO any time and I'll remember you.",
            ),
        ),
    ),
    "optin": Profile(
        "+61400000200",
        0.3,
        "optin:deals",
        ("JOIN", "YES", "yes please", "no thanks", "Y", "join", "STOP", "HELP"),
        (
            (
                "optin/confirm.txt",
                "Get our weekly deals by text? Reply YES to confirm. Msg&data rates may apply; "
                "reply STOP any time to stop.",
            ),
            (
                "optin/welcome.txt",
                "You're in! Our deals arrive every Friday. Reply STOP to unsubscribe.",
            ),
            (
                "optin/already.txt",
                "You're already getting our weekly deals. Reply STOP to unsubscribe.",
            ),
            (
                "optin/declined.txt",
                "No worries, you're not subscribed. Text JOIN any time to join.",
            ),
            (
                "optin/expired.txt",
                "We didn't hear back, so you're not subscribed. Text JOIN any time to join.",
            ),
        ),
    ),
    "survey": Profile(
        "+61400000300",
        0.2,
        "survey:satisfaction",
        (
            "SURVEY",
            "5",
            "4",
            "1",
            "YES",
            "NO",
            "Great service 👍",
            "The staff were friendly and the wait was short",
            "My order arrived two days late and nobody answered the phone when I called to ask "
            "where it was. I would like a refund of the delivery fee please, it was not cheap.",
            "Parking was impossible",
        ),
        (
            (None, "Thanks for choosing us! How did we do, from 1 (poor) to 5 (great)?"),
            (None, "Glad to hear it! What did you like most?"),
            (None, "Sorry we let you down. What went wrong?"),
            (None, "Would you recommend us to a friend? YES or NO"),
            (
                "survey/thanks.txt",
                "Thank you for your feedback, and for recommending us! "
                "Every answer helps us do better.",
            ),
        ),
    ),
}
# The delivery status an accepted MT ends with, and the receipts that took it there.
RECEIPTS: tuple[tuple[str | None, tuple[str, ...]], ...] = (
    ("received", ("sent", "received")),
    ("received", ("received",)),
    ("sent", ("sent",)),
    ("failed", ("sent", "failed")),
    ("expired", ("sent", "expired")),
    ("rejected", ("rejected",)),
    (None, ()),
)
RECEIPT_WEIGHTS = (70, 19, 3, 2, 1, 1, 4)

THREAD_COLUMNS = (
    "id, bot, handset, address, state, data, status, created_at, updated_at, closed_at, "
    "paused_by, paused_at"
)
MESSAGE_COLUMNS = (
    "id, direction, gateway_id, thread_id, handset, address, content, encoding, segments, "
    "operator, reply_to, reference, message_class, template, status, delivery, error, "
    "created_at, updated_at"
)
DELIVERY_COLUMNS = "gateway_id, status, reference, message_id, received_at"


@dataclass
class Thread:
    """One conversation as generated: its bot, handset and the times of its messages."""

    bot: str
    handset: str
    times: list[int]  # milliseconds since the epoch
    id: int = 0
    open: bool = False


def build(path: Path, messages: int, threads: int, seed: int = 5) -> dict[str, Any]:
    """Create the database at `path` with `messages` messages over `threads` threads; say
    what it holds (the long thread, a normal one, a handset, the newest activity)."""
    rng = random.Random(seed)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    conversations = _threads(rng, messages, threads, int(end.timestamp() * 1000))
    asyncio.run(_migrate(path, before=TEXT_INDEX))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-512000"):
            conn.execute(f"PRAGMA {pragma}")
        _insert(conn, "threads", THREAD_COLUMNS, list(_thread_rows(rng, conversations)))
        deliveries = _fill_messages(conn, rng, conversations, messages)
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    asyncio.run(_migrate(path))
    normal = min(conversations[1:], key=lambda t: abs(len(t.times) - messages // threads))
    return {
        "messages": messages,
        "threads": threads,
        "deliveries": deliveries,
        "long_thread": conversations[0].id,
        "long_thread_messages": len(conversations[0].times),
        "normal_thread": normal.id,
        "normal_thread_messages": len(normal.times),
        "handset": normal.handset,
        "newest": max(_stamp(t.times[-1]) for t in conversations),
    }


async def _migrate(path: Path, before: int | None = None) -> None:
    """The schema, as the app makes it: the migrations before version `before` (None:
    every one)."""
    db = await Database.open(str(path))
    try:
        await migrate(db, tuple(m for m in MIGRATIONS if before is None or m.version < before))
    finally:
        await db.close()


def _threads(rng: random.Random, messages: int, threads: int, end: int) -> list[Thread]:
    """The conversations, the long one first, each with its message times; ids in order
    of their first message, open or closed as the app would leave them."""
    bots = list(PROFILES)
    weights = [PROFILES[b].share for b in bots]
    handsets = [f"+614{n:08d}" for n in rng.sample(range(10**8), max(1, threads * 7 // 10))]
    window = DAYS * 86_400_000
    made = []
    for number, count in enumerate(_sizes(rng, messages, threads)):
        times = _timeline(rng, count, window, long=number == 0)
        span = times[-1]
        start = end - span - rng.randrange(3_600_000 if number == 0 else window - span)
        bot = "hello" if number == 0 else rng.choices(bots, weights)[0]
        made.append(Thread(bot, rng.choice(handsets), [start + t for t in times]))
    # One open thread at most per handset and address: its latest, if recently active.
    latest: dict[tuple[str, str], Thread] = {}
    for rank, thread in enumerate(sorted(made, key=lambda t: t.times[0]), start=1):
        thread.id = rank
        latest[(thread.handset, thread.bot)] = thread
    for thread in latest.values():
        thread.open = end - thread.times[-1] < 30 * 86_400_000 and rng.random() < 0.7
    return made


def _sizes(rng: random.Random, messages: int, threads: int) -> list[int]:
    """Messages per thread: the long thread, then most short and a few longer, each at
    least an MO and its reply, all summing to `messages`."""
    long = min(LONG_THREAD, messages // 10)
    spare = messages - long - 2 * (threads - 1)
    if threads < 2 or spare < 0:
        raise ValueError("need at least 2 threads and 2 messages a thread besides the long one")
    weights = [min(rng.paretovariate(1.5), 40.0) - 1 for _ in range(threads - 1)]
    total = sum(weights)
    counts = [2 + int(spare * w / total) for w in weights]
    for i in rng.choices(range(threads - 1), k=messages - long - sum(counts)):
        counts[i] += 1
    return [long, *counts]


def _timeline(rng: random.Random, count: int, window: int, long: bool) -> list[int]:
    """Offsets in ms of a thread's messages: each MT seconds after its MO, the next MO
    minutes later while chatting or days later on coming back; within `window`."""
    times, t = [], 0
    for seq in range(count):
        times.append(t)
        if seq % 2 == 0:
            t += rng.randint(700, 4_000)
        elif long:
            t += int(rng.expovariate(count / (1.8 * window)))
        else:
            t += int(rng.expovariate(1 / 90_000 if rng.random() < 0.85 else 1 / 172_800_000))
    if times[-1] >= window * 0.95:
        scale = window * 0.95 / times[-1]
        times = [int(x * scale) + seq for seq, x in enumerate(times)]
    return times


def _thread_rows(rng: random.Random, conversations: list[Thread]) -> Iterator[tuple[Any, ...]]:
    """The threads table's rows, in id order."""
    for t in sorted(conversations, key=lambda t: t.id):
        profile = PROFILES[t.bot]
        first, last = _stamp(t.times[0]), _stamp(t.times[-1])
        state = profile.state if t.open and rng.random() < 0.4 else None
        paused = t.open and rng.random() < 0.01
        yield (
            t.id,
            t.bot,
            t.handset,
            profile.address,
            state,
            "{}",
            "open" if t.open else "closed",
            first,
            last,
            None if t.open else last,
            "operator" if paused else None,
            last if paused else None,
        )


def _fill_messages(
    conn: sqlite3.Connection, rng: random.Random, conversations: list[Thread], total: int
) -> int:
    """Insert every message in time order (ids follow time, as in the app) and each
    MT's receipts; return the number of receipts."""
    keys = [
        (time << (THREAD_BITS + SEQ_BITS)) | (index << SEQ_BITS) | seq
        for index, thread in enumerate(conversations)
        for seq, time in enumerate(thread.times)
    ]
    keys.sort()
    sizes = {text: measure(text) for p in PROFILES.values() for text in _texts(p)}
    last_mt: dict[int, tuple[int | None, str | None]] = {}
    messages: list[tuple[Any, ...]] = []
    receipts: list[tuple[Any, ...]] = []
    count = 0
    with progress_bar(total=total, unit="msg", desc="fill") as bar:
        for message_id, key in enumerate(keys, start=1):
            thread = conversations[(key >> SEQ_BITS) & ((1 << THREAD_BITS) - 1)]
            seq, time = key & ((1 << SEQ_BITS) - 1), key >> (THREAD_BITS + SEQ_BITS)
            profile = PROFILES[thread.bot]
            if seq % 2 == 0:
                content = profile.mo[0] if seq == 0 else rng.choice(profile.mo)
                row = _mo(rng, message_id, thread, time, content, last_mt.get(thread.id))
            else:
                template, content = profile.mt[0] if seq == 1 else rng.choice(profile.mt)
                row, dlrs = _mt(rng, message_id, thread, time, content, template)
                receipts += dlrs
                last_mt[thread.id] = (row[2], row[9])
            size = sizes[content]
            messages.append((*row[:7], size.name, size.segments, *row[7:]))
            if len(messages) == BATCH:
                count += _flush(conn, messages, receipts)
                bar.update(BATCH)
        count += _flush(conn, messages, receipts)
        bar.update(len(keys) % BATCH)
    return count


def _texts(profile: Profile) -> list[str]:
    """Every text a bot's conversations use."""
    return [*profile.mo, *(text for _, text in profile.mt)]


def _mo(
    rng: random.Random,
    message_id: int,
    thread: Thread,
    time: int,
    content: str,
    answers: tuple[int | None, str | None] | None,
) -> tuple[Any, ...]:
    """An MO as stored once handled; half of the replies name the MT they answer."""
    reply_to, reference = answers if answers and rng.random() < 0.5 else (None, None)
    failed = rng.random() < 0.003
    return (
        message_id,
        "mo",
        7_000_000_000 + message_id,
        thread.id,
        thread.handset,
        PROFILES[thread.bot].address,
        content,
        rng.choice(OPERATORS),
        reply_to,
        reference,
        None,
        None,
        "failed" if failed else "handled",
        None,
        "KeyError: 'name'" if failed else None,
        _stamp(time),
        _stamp(time + rng.randint(20, 200)),
    )


def _mt(
    rng: random.Random,
    message_id: int,
    thread: Thread,
    time: int,
    content: str,
    template: str | None,
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """An MT after its send, and its delivery receipts (none when the send failed)."""
    failed = rng.random() < 0.015
    reference = None if failed else f"t{thread.id}.m{message_id}"
    gateway_id = None if failed else 9_000_000_000 + message_id
    delivery, statuses = (None, ()) if failed else rng.choices(RECEIPTS, RECEIPT_WEIGHTS)[0]
    at, receipts = time, []
    for status in statuses:
        at += rng.randint(1_000, 30_000)
        receipts.append((gateway_id, status, reference, message_id, _stamp(at)))
    row = (
        message_id,
        "mt",
        gateway_id,
        thread.id,
        thread.handset,
        PROFILES[thread.bot].address,
        content,
        None,
        None,
        reference,
        "mt_message",
        template,
        "failed" if failed else "accepted",
        delivery,
        "gateway: 503 queue full, gave up after 5 attempts" if failed else None,
        _stamp(time),
        _stamp(at + (60_000 if failed else 300)),
    )
    return row, receipts


def _flush(
    conn: sqlite3.Connection, messages: list[tuple[Any, ...]], receipts: list[tuple[Any, ...]]
) -> int:
    """Insert and forget the rows gathered so far, in one transaction; return the
    number of receipts."""
    _insert(conn, "messages", MESSAGE_COLUMNS, messages)
    _insert(conn, "deliveries", DELIVERY_COLUMNS, receipts)
    count = len(receipts)
    messages.clear()
    receipts.clear()
    return count


def _insert(
    conn: sqlite3.Connection, table: str, columns: str, rows: list[tuple[Any, ...]]
) -> None:
    """Insert `rows` into `table` with executemany, in one transaction."""
    marks = ", ".join("?" * len(columns.split(",")))
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
    conn.execute("COMMIT")


def _stamp(ms: int) -> str:
    """Milliseconds since the epoch as the store writes a time."""
    return stamp(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms))
