"""Surveys: each respondent's status and answers, and the results read back.

A respondent is a thread that a survey ran in. Answers and status changes are written
by the survey's handlers through `ctx.write`, so they commit with the handler's reply and
state. A respondent still `started` whose thread was closed some other way (STOP) counts
as `incomplete`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..clock import stamp
from ..db import Tx
from .base import Part
from .webhooks import survey_completed

# The columns of a result row before one column per question, in order.
COLUMNS = ("thread_id", "handset", "status", "started_at", "ended_at")
STATUSES = ("started", "completed", "incomplete")


@dataclass(frozen=True)
class Answer:
    """One answer of a respondent, with the MO that gave it."""

    survey: str
    question: str
    value: Any
    raw: str
    message_id: int | None


async def begin(
    tx: Tx, thread_id: int, survey: str, questions: Sequence[dict[str, Any]], now: str
) -> None:
    """Record the survey's questions and a respondent starting it (again: afresh)."""
    await tx.execute(
        """INSERT INTO surveys (name, questions, updated_at) VALUES (?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET questions = excluded.questions,
               updated_at = excluded.updated_at""",
        (survey, json.dumps(list(questions)), now),
    )
    await tx.execute(
        "DELETE FROM survey_answers WHERE survey = ? AND thread_id = ?", (survey, thread_id)
    )
    await tx.execute(
        """INSERT INTO survey_responses (survey, thread_id, status, started_at)
           VALUES (?, ?, 'started', ?)
           ON CONFLICT (survey, thread_id) DO UPDATE SET status = 'started',
               started_at = excluded.started_at, ended_at = NULL""",
        (survey, thread_id, now),
    )


async def save_answer(tx: Tx, thread_id: int, answer: Answer, now: str) -> None:
    """Store a respondent's answer to a question (a later one replaces it)."""
    await tx.execute(
        """INSERT INTO survey_answers (survey, thread_id, question, value, raw, message_id,
               answered_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (survey, thread_id, question) DO UPDATE SET value = excluded.value,
               raw = excluded.raw, message_id = excluded.message_id,
               answered_at = excluded.answered_at""",
        (
            answer.survey,
            thread_id,
            answer.question,
            json.dumps(answer.value),
            answer.raw,
            answer.message_id,
            now,
        ),
    )


async def end(tx: Tx, thread_id: int, survey: str, status: str, now: str) -> None:
    """Mark a respondent completed or incomplete."""
    assert status in STATUSES[1:]
    ended = await tx.execute(
        """UPDATE survey_responses SET status = ?, ended_at = ?
           WHERE survey = ? AND thread_id = ? AND status = 'started'""",
        (status, now, survey, thread_id),
    )
    if ended and status == "completed":
        await survey_completed(tx, thread_id, survey, now)


# A respondent's status as reported: `started` only while the thread is open.
RESPONSES = """
    SELECT r.survey, r.thread_id, t.handset,
           CASE WHEN r.status = 'started' AND t.status = 'closed' THEN 'incomplete'
                ELSE r.status END AS status,
           r.started_at,
           coalesce(r.ended_at, CASE WHEN r.status = 'started' THEN t.closed_at END)
               AS ended_at
    FROM survey_responses r JOIN threads t ON t.id = r.thread_id
"""


class Surveys(Part):
    """Reads of survey results."""

    async def questions(self, survey: str) -> list[dict[str, Any]] | None:
        """The survey's questions as last run (id, kind, countable values), then any other
        question answered under its name; None if nobody has started it."""
        stored = await self.db.fetchval("SELECT questions FROM surveys WHERE name = ?", (survey,))
        if stored is None:
            return None
        questions = json.loads(stored)
        known = {question["id"] for question in questions}
        rows = await self.db.fetchall(
            """SELECT question FROM survey_answers WHERE survey = ?
               GROUP BY question ORDER BY min(answered_at)""",
            (survey,),
        )
        extra = [row[0] for row in rows if row[0] not in known]
        return questions + [{"id": id, "kind": None, "values": None} for id in extra]

    async def rows(
        self,
        survey: str,
        questions: Sequence[str] | None = None,
        *,
        handset: str | None = None,
        since: datetime | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """One row per respondent, in the order they started: COLUMNS, then the value of
        each of `questions` (by default the survey's), None when unanswered. Optionally
        of one handset, and of those who started from a moment on."""
        if questions is None:
            questions = [question["id"] for question in await self.questions(survey) or []]
        where, params = ["r.survey = ?"], [survey]
        if handset is not None:
            where.append("t.handset = ?")
            params.append(handset)
        if since is not None:
            where.append("r.started_at >= ?")
            params.append(stamp(since))
        stream = self.db.stream(
            f"""SELECT x.*, a.question, a.value
                FROM ({RESPONSES} WHERE {" AND ".join(where)}) x
                LEFT JOIN survey_answers a ON a.survey = ? AND a.thread_id = x.thread_id
                ORDER BY x.thread_id""",
            [*params, survey],
        )
        current: dict[str, Any] | None = None
        async with contextlib.aclosing(stream):
            async for row in stream:
                if current is None or current["thread_id"] != row["thread_id"]:
                    if current is not None:
                        yield current
                    current = {column: row[column] for column in COLUMNS}
                    current.update(dict.fromkeys(questions))
                if row["question"] in questions:
                    current[row["question"]] = json.loads(row["value"])
        if current is not None:
            yield current

    async def statuses(self, survey: str) -> dict[str, int]:
        """How many respondents are in each status."""
        rows = await self.db.fetchall(
            f"SELECT status, count(*) FROM ({RESPONSES} WHERE r.survey = ?) x GROUP BY status",
            (survey,),
        )
        found = {row[0]: row[1] for row in rows}
        return {status: found.get(status, 0) for status in STATUSES}

    async def counts(self, survey: str) -> dict[str, dict[Any, int]]:
        """For each question, how many respondents gave each answer."""
        rows = await self.db.fetchall(
            """SELECT question, value, count(*) FROM survey_answers WHERE survey = ?
               GROUP BY question, value""",
            (survey,),
        )
        counts: dict[str, dict[Any, int]] = {}
        for question, value, count in rows:
            counts.setdefault(question, {})[json.loads(value)] = count
        return counts

    async def summaries(self) -> list[dict[str, Any]]:
        """Every survey that has been started, by name: when it last started for someone,
        its respondents, and how many are in each status."""
        surveys = await self.db.fetchall("SELECT name, updated_at FROM surveys ORDER BY name")
        rows = await self.db.fetchall(
            f"SELECT survey, status, count(*) FROM ({RESPONSES}) x GROUP BY survey, status"
        )
        found = {(survey, status): count for survey, status, count in rows}
        summaries = []
        for name, updated_at in surveys:
            statuses = {status: found.get((name, status), 0) for status in STATUSES}
            summaries.append(
                {
                    "name": name,
                    "updated_at": updated_at,
                    "respondents": sum(statuses.values()),
                    "statuses": statuses,
                }
            )
        return summaries

    async def texts(self, survey: str, question: str, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` answers to a question (thread_id, handset, value, raw,
        answered_at), newest respondent first: free text to read, not count."""
        rows = await self.db.fetchall(
            """SELECT a.thread_id, t.handset, a.value, a.raw, a.answered_at
               FROM survey_answers a JOIN threads t ON t.id = a.thread_id
               WHERE a.survey = ? AND a.question = ?
               ORDER BY a.thread_id DESC LIMIT ?""",
            (survey, question, limit),
        )
        return [{**dict(row), "value": json.loads(row["value"])} for row in rows]
