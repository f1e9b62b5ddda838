"""What the crash tests judge a burst of MOs by: the hello bot's expected replies, and
the database and the simulator's record compared once everything has settled."""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import httpx
from conftest import rows


def script(handset: int, rounds: int) -> list[str]:
    """What one handset texts, in order: greetings, names, name changes."""
    words = ["HELLO", f"Ann {handset}", "NAME", f"Bob {handset}", "HELLO", "what?"]
    return [words[n % len(words)] for n in range(rounds)]


class Reply(NamedTuple):
    """A reply the tests expect: its template, a name it must hold, and whether it was
    given while the handset had opted out (the outbox must refuse it)."""

    template: str
    name: str | None = None
    opted_out: bool = False


def hello_bot(texts: list[str]) -> list[Reply]:
    """The replies the hello bot gives to `texts` handled in this order, behind the
    compliance words STOP and START (a STOP ends the conversation: the next starts
    afresh)."""
    state, name, out, replies = None, None, False, []
    for text in texts:
        word = text.strip().upper()
        if word == "STOP":
            if not out:  # a repeated STOP is not confirmed again
                replies.append(Reply("compliance/stopped.txt"))
            state, name, out = None, None, True
            continue
        if word == "START":
            replies.append(Reply("compliance/started.txt"))
            out = False
            continue
        if state == "ask_name" and word in ("HELLO", "HI", "HEY"):
            template, shown = "hello/ask_name.txt", None  # a greeting is no name
        elif state == "ask_name":
            state, name = None, text
            template, shown = "hello/greet.txt", name
        elif word == "HELLO":
            template, shown = (
                ("hello/welcome_back.txt", name) if name else ("hello/ask_name.txt", None)
            )
            state = None if name else "ask_name"
        elif word == "NAME":
            template, shown = "hello/ask_name.txt", None
            state = "ask_name"
        else:
            template, shown = "hello/help.txt", None
        replies.append(Reply(template, shown, out))
    return replies


class Texting(threading.Thread):
    """Handsets (numbered) sending `texts` through the simulator, spread over `seconds`,
    whether the app is up or not; `join` checks that the simulator took every one."""

    def __init__(self, sim_url: str, texts: list[tuple[int, str]], seconds: float) -> None:
        super().__init__()
        self.sim_url, self.texts, self.seconds = sim_url, texts, seconds
        self.refused: list[httpx.Response] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.sim_url, timeout=30) as client:
            for handset, word in self.texts:
                sent = client.post(f"/api/handsets/+614{handset:08d}/send", json={"text": word})
                if sent.status_code != 202:
                    self.refused.append(sent)
                time.sleep(self.seconds / len(self.texts))

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        assert self.refused == [], self.refused


def quiet(http: httpx.Client, database: str) -> bool:
    """Every MO answered for good, nothing left to handle or send, and every MT the
    gateway took known by its id (from its answer or, for an uncertain one, its DLR)."""
    if any(mo["pending"] for mo in http.get("/api/mos").json()["mos"]):
        return False
    if rows(database, "SELECT (SELECT count(*) FROM inbox) + (SELECT count(*) FROM outbox)")[0][0]:
        return False
    sent = http.get("/api/messages").json()["messages"]
    known = {r[0] for r in rows(database, "SELECT gateway_id FROM messages WHERE direction = 'mt'")}
    return all(int(m["id"]) in known for m in sent)


def assert_handled_in_order(stored: list, mts: list) -> None:
    """Per handset, the MTs are the hello bot's replies to its MOs in the order stored,
    and those it gave while the handset had opted out were refused."""
    for handset in {m["handset"] for m in stored}:
        handled = [m["content"] for m in stored if m["handset"] == handset]
        replies = [m for m in mts if m["handset"] == handset]
        expected = hello_bot(handled)
        assert [r["template"] for r in replies] == [e.template for e in expected], handled
        for reply, e in zip(replies, expected, strict=True):
            assert e.name is None or e.name in reply["content"], (handset, handled)
            assert not e.opted_out or reply["status"] == "refused", (handset, handled)


def assert_sent_once(sent: list[dict], mts: list) -> dict[str, int]:
    """No MT reached the gateway twice; each it took is accepted under the id it got, and
    the others are 'uncertain' (claimed in the instant before a kill, never resent).
    Returns the gateway's id of each accepted MT by reference."""
    references = [m["reference"] for m in sent]
    assert len(references) == len(set(references)), "an MT reached the gateway twice"
    accepted = {m["reference"]: int(m["id"]) for m in sent}
    for mt in mts:
        if mt["reference"] in accepted:
            assert (mt["status"], mt["gateway_id"]) == ("accepted", accepted[mt["reference"]])
        else:
            assert mt["status"] == "uncertain" and mt["gateway_id"] is None
    return accepted
