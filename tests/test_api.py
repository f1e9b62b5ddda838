"""/api: survey results as JSON, open to loopback clients only, or to anyone with the
dashboard login once one is set (HTTP Basic)."""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx
import pytest
from conftest import ROOT

from botkit import Bot, Question, Survey
from botkit.testing import Harness

pytestmark = pytest.mark.backends

TEMPLATES = ROOT / "templates"
OUTSIDE = ("203.0.113.7", 50000)


def poll_bot() -> Bot:
    bot = Bot("poll")
    Survey(
        "lunch",
        [
            Question.choice("food", "Pizza or pasta?", ["Pizza", "Pasta"]),
            Question.rating("hunger", "How hungry, 1 to 3?", scale=3),
            Question.number("people", "How many of you?", min=1),
            Question.yes_no("drinks", "Drinks too?"),
            Question.text("notes", "Anything else?"),
        ],
        expiry=timedelta(hours=1),
    ).attach(bot, keyword="LUNCH")
    return bot


def client(harness: Harness, peer: tuple[str, int] = ("127.0.0.1", 50000)) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=harness.app, client=peer)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_survey_results_have_rows_and_per_question_counts(database):
    async with Harness([poll_bot()], TEMPLATES, db=database) as harness:
        ann, ben, cat = (harness.phone(f"+6140000000{n}") for n in (1, 2, 3))
        for text in ("lunch", "pizza", "3", "4", "yes", "Extra cheese"):
            await ann.send(text)
        for text in ("lunch", "2", "3", "2", "no"):
            await ben.send(text)
        await cat.send("lunch")
        await cat.send("1")
        await harness.advance(hours=1)  # ben and cat never finish
        async with client(harness) as http:
            response = await http.get("/api/surveys/lunch")
        assert response.status_code == 200
        results = response.json()
        assert (results["survey"], results["respondents"]) == ("lunch", 3)
        assert results["statuses"] == {"started": 0, "completed": 1, "incomplete": 2}
        assert results["questions"] == [
            {
                "id": "food",
                "kind": "choice",
                "answered": 3,
                "counts": [{"value": "Pizza", "count": 2}, {"value": "Pasta", "count": 1}],
            },
            {
                "id": "hunger",
                "kind": "rating",
                "answered": 2,
                "counts": [
                    {"value": 1, "count": 0},
                    {"value": 2, "count": 0},
                    {"value": 3, "count": 2},
                ],
            },
            {
                "id": "people",
                "kind": "number",
                "answered": 2,
                "counts": [{"value": 2, "count": 1}, {"value": 4, "count": 1}],
            },
            {
                "id": "drinks",
                "kind": "yes_no",
                "answered": 2,
                "counts": [{"value": True, "count": 1}, {"value": False, "count": 1}],
            },
            {"id": "notes", "kind": "text", "answered": 1, "counts": None},
        ]
        rows = {row["handset"]: row for row in results["rows"]}
        assert rows["+61400000001"]["notes"] == "Extra cheese"
        assert rows["+61400000001"]["status"] == "completed"
        assert (rows["+61400000002"]["drinks"], rows["+61400000002"]["notes"]) == (False, None)
        assert rows["+61400000003"]["hunger"] is None


async def test_an_unknown_survey_is_404(database):
    async with Harness([poll_bot()], TEMPLATES, db=database) as harness, client(harness) as http:
        response = await http.get("/api/surveys/nope")
        assert response.status_code == 404
        assert response.json() == {"error": "no survey named 'nope' has been started"}


@pytest.mark.parametrize("peer", [("127.0.0.1", 1), ("::1", 1), ("127.0.0.2", 1)])
async def test_loopback_clients_need_no_login_when_none_is_set(peer, database):
    async with (
        Harness([poll_bot()], TEMPLATES, db=database) as harness,
        client(harness, peer) as http,
    ):
        assert (await http.get("/api/surveys/nope")).status_code == 404


async def test_other_clients_are_refused_when_no_login_is_set(database):
    async with (
        Harness([poll_bot()], TEMPLATES, db=database) as harness,
        client(harness, OUTSIDE) as http,
    ):
        response = await http.get("/api/surveys/lunch", headers=basic("any", "thing"))
        assert response.status_code == 403
        assert "BOTKIT_DASHBOARD_USER" in response.json()["error"]


@pytest.mark.parametrize("peer", [OUTSIDE, ("127.0.0.1", 1)])
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (basic("ops", "wrong"), 401),
        (basic("admin", "s3cret:pw"), 401),
        (basic("ops", "s3cret:pw"), 404),  # let in: the survey does not exist
        ({"Authorization": "Bearer s3cret:pw"}, 401),
        ({"Authorization": "Basic not base64!"}, 401),
    ],
)
async def test_with_a_login_set_every_client_needs_it(peer, headers, status, database):
    login = {"dashboard_user": "ops", "dashboard_password": "s3cret:pw"}
    async with (
        Harness([poll_bot()], TEMPLATES, **login, db=database) as harness,
        client(harness, peer) as http,
    ):
        response = await http.get("/api/surveys/nope", headers=headers)
        assert response.status_code == status
        if status == 401:
            assert response.headers["www-authenticate"].startswith('Basic realm="botkit"')
            assert "s3cret" not in response.text
