"""The people around the soak test's app (tests/test_soak.py), each a thread that goes
on until told to stop, whatever happens to the app meanwhile, and counts what it did:
survey respondents answering what reaches their handsets, dashboard readers holding
live updates open, an operator replying from the dashboard, and a watch on the app's
memory in each of its lives."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from signin import token

from botkit.sessions import COOKIE


def number(handset: int) -> str:
    """The number of handset `handset`, as burst.Texting texts from it."""
    return f"+614{handset:08d}"


class Respondents(threading.Thread):
    """Handsets answering a survey as a person would: each sends its next answer once
    the question it answers has reached it (the simulator's record of its MTs), until
    it has given them all. `answers`: each handset's, in order."""

    def __init__(self, sim_url: str, answers: dict[int, list[str]], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.sim_url, self.answers, self.stop = sim_url, answers, stop
        self.sent = dict.fromkeys(answers, 0)  # answers each has sent
        self.refused: list[str] = []

    def unanswered(self, received: Mapping[str, int]) -> int:
        """How many have a question they have not answered yet, given how many MTs have
        `received` (by number: the gateway's record, which their next look will see)."""
        return sum(
            self.sent[h] < min(received.get(number(h), 0), len(self.answers[h]))
            for h in self.answers
        )

    def run(self) -> None:
        with httpx.Client(base_url=self.sim_url, timeout=30) as client:
            while not self.stop.wait(1.0):  # a look a second, as a person reads
                for handset, answers in self.answers.items():
                    if self.sent[handset] < len(answers):
                        self._answer(client, handset, answers)

    def _answer(self, client: httpx.Client, handset: int, answers: list[str]) -> None:
        phone = f"/api/handsets/{number(handset)}"
        messages = client.get(phone).json()["messages"]
        if self.sent[handset] < sum(m["direction"] == "mt" for m in messages):
            text = answers[self.sent[handset]]
            sent = client.post(f"{phone}/send", json={"text": text})
            if sent.status_code != 202:
                self.refused.append(sent.text)
            self.sent[handset] += 1


class Reader(threading.Thread):
    """A dashboard reader holding a transcript's live updates open (server-sent events)
    with Basic auth, and opening them again, from the last event it had, whenever they
    break (the app killed, the database away), as a browser's EventSource does."""

    def __init__(
        self, app_url: str, thread_id: int, auth: tuple[str, str], stop: threading.Event
    ) -> None:
        super().__init__(daemon=True)
        self.app_url, self.thread_id, self.auth, self.stop = app_url, thread_id, auth, stop
        self.events: list[int] = []  # the events of each stream it held, in turn
        self.failed = 0  # attempts refused, or streams broken

    def run(self) -> None:
        last = None
        path = f"/dashboard/threads/{self.thread_id}/events"
        timeout = httpx.Timeout(30, read=60)  # the stream pings every 15 s
        with httpx.Client(base_url=self.app_url, auth=self.auth, timeout=timeout) as client:
            while not self.stop.is_set():
                headers = {} if last is None else {"Last-Event-ID": last}
                try:
                    with client.stream("GET", path, headers=headers) as response:
                        if response.status_code != 200:
                            self.failed += 1
                        else:
                            last = self._read(response, last)
                except httpx.HTTPError:
                    self.failed += 1
                self.stop.wait(1.0)  # EventSource's pause before it reconnects

    def _read(self, response: httpx.Response, last: str | None) -> str | None:
        """Count a stream's events until it ends or the reader stops; the last id."""
        self.events.append(0)
        for line in response.iter_lines():
            if line.startswith("id:"):
                last = line.removeprefix("id:").strip()
            elif line.startswith("event:"):
                self.events[-1] += 1
            if self.stop.is_set():
                break
        return last


@dataclass
class Note:
    """One reply the operator wrote: to which thread, its text, and the answer to its
    POST (None: the POST had no answer, or was never made: `posted`)."""

    thread_id: int
    text: str
    posted: bool = False
    status: int | None = None


class Operator(threading.Thread):
    """An operator signed in once through the dashboard's form (the session is kept in
    the database: it outlives the app's restarts), replying every `every` seconds to
    `threads` in turn, as from the transcript's form, with its CSRF token."""

    def __init__(
        self,
        app_url: str,
        threads: list[int],
        login: tuple[str, str],
        every: float,
        stop: threading.Event,
    ) -> None:
        super().__init__(daemon=True)
        self.app_url, self.threads, self.login = app_url, threads, login
        self.every, self.stop = every, stop
        self.notes: list[Note] = []
        self.signed_out = 0  # times the dashboard sent it back to the login form

    def run(self) -> None:
        with httpx.Client(base_url=self.app_url, timeout=30) as client:
            self._sign_in(client)
            while not self.stop.wait(self.every):
                thread_id = self.threads[len(self.notes) % len(self.threads)]
                note = Note(thread_id, f"Operator note {len(self.notes)} for {thread_id}")
                self.notes.append(note)
                self._reply(client, note)

    def _sign_in(self, client: httpx.Client) -> None:
        user, password = self.login
        form = client.get("/dashboard/login")
        data = {"csrf": token(form), "user": user, "password": password}
        signed_in = client.post("/dashboard/login", data=data)
        assert signed_in.status_code == 303 and COOKIE in client.cookies, signed_in.text

    def _reply(self, client: httpx.Client, note: Note) -> None:
        page_path = f"/dashboard/threads/{note.thread_id}"
        try:
            page = client.get(page_path)
            if page.status_code == 303:  # to the login form: the session was lost
                self.signed_out += 1
                self._sign_in(client)
                return
            if page.status_code != 200:
                return
            note.posted = True
            data = {"csrf": token(page), "text": note.text}
            note.status = client.post(f"{page_path}/reply", data=data).status_code
        except httpx.TransportError:
            pass


class Memory(threading.Thread):
    """The app's resident memory (VmRSS, with its gateway process's), sampled every
    `every` seconds through each of its lives: `watch` starts a life, with the process
    that lives it."""

    def __init__(self, every: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.every, self.stop = every, stop
        self.lives: list[list[tuple[float, int]]] = []  # (seconds into the life, kB)
        self._life: tuple[int, float, list[tuple[float, int]]] | None = None

    def watch(self, pid: int) -> None:
        samples: list[tuple[float, int]] = []
        self.lives.append(samples)
        self._life = (pid, time.monotonic(), samples)

    def run(self) -> None:
        while not self.stop.wait(self.every):
            if self._life is None:
                continue
            pid, born, samples = self._life
            if (rss := resident_kb(pid)) is not None:
                children = sum(resident_kb(child) or 0 for child in children_of(pid))
                samples.append((time.monotonic() - born, rss + children))


def resident_kb(pid: int) -> int | None:
    """A process's resident memory in kB; None once it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def children_of(pid: int) -> list[int]:
    """The processes a process started (none once it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
            return [int(child) for child in children.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


@dataclass(frozen=True)
class Life:
    """A life's memory after its warm-up: how many samples, the median of the first and
    last thirds of them, and the highest (kB)."""

    samples: int
    first: float
    last: float
    peak: int

    @classmethod
    def of(cls, samples: list[tuple[float, int]], warm_up: float) -> Life | None:
        """None for a life with too few samples past `warm_up` seconds to tell."""
        rss = [kb for seconds, kb in samples if seconds >= warm_up]
        if len(rss) < 6:
            return None
        third = len(rss) // 3
        return cls(
            len(rss), statistics.median(rss[:third]), statistics.median(rss[-third:]), max(rss)
        )

    def __str__(self) -> str:
        mb = 1024
        return (
            f"{self.samples} samples, {self.first / mb:.0f} MB -> {self.last / mb:.0f} MB "
            f"(medians of the first and last thirds), peak {self.peak / mb:.0f} MB"
        )
