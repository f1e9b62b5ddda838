"""Survey results.

GET /dashboard/surveys/              every survey: respondents, completed, completion rate
GET /dashboard/surveys/{name}        per question a chart of the answers (or the latest
                                     free-text ones) and how many answered
GET /dashboard/surveys/{name}.csv    the results as `botkit export survey NAME` writes them
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..api import question_counts
from ..errors import ValidationError
from ..export import survey_rows, text_pieces
from .charts import bar_chart
from .pages import Pages

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..store import Store

# Free-text answers shown per question; the CSV has them all.
TEXTS = 20


def routes(pages: Pages, runtime: Runtime) -> list[Route]:
    async def surveys(request: Request) -> Response:
        rows = await runtime.store.surveys.summaries()
        for row in rows:
            row["completion"] = percent(row["statuses"]["completed"], row["respondents"])
        return pages.render(request, "surveys.html", {"rows": rows})

    def show(request: Request, name: str, results: dict[str, Any] | None) -> Response:
        context = {"name": name, "results": results}
        return pages.render(request, "survey.html", context, 200 if results else 404)

    async def survey(request: Request) -> Response:
        name = request.path_params["name"]
        return show(request, name, await results_of(runtime.store, name))

    async def download(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            columns, rows = await survey_rows(runtime.store, name, "csv")
        except ValidationError:
            return show(request, name, None)
        filename = re.sub(r"[^A-Za-z0-9_-]", "_", name)
        return pages.download(text_pieces(rows, "csv", columns), f'"{filename}.csv"')

    return [
        Route("/surveys/", surveys, methods=["GET"], name="surveys"),
        # Before /surveys/{name}, which would take `name.csv` as a survey's name.
        Route("/surveys/{name}.csv", download, methods=["GET"], name="survey_csv"),
        Route("/surveys/{name}", survey, methods=["GET"], name="survey"),
    ]


async def results_of(store: Store, name: str) -> dict[str, Any] | None:
    """What the results page shows of survey `name`; None if nobody has started it."""
    questions = await store.surveys.questions(name)
    if questions is None:
        return None
    statuses = await store.surveys.statuses(name)
    respondents = sum(statuses.values())
    counts = await store.surveys.counts(name)
    shown = []
    for question in questions:
        tally = question_counts(question, counts.get(question["id"], {}))
        tally["rate"] = percent(tally["answered"], respondents)
        if tally["counts"] is None:
            tally["texts"] = await store.surveys.texts(name, question["id"], TEXTS)
        else:
            bars = [(label(item["value"]), item["count"]) for item in tally["counts"]]
            tally["chart"] = bar_chart(question["id"], bars)
        shown.append(tally)
    return {
        "respondents": respondents,
        "statuses": statuses,
        "completion": percent(statuses["completed"], respondents),
        "questions": shown,
    }


def label(value: Any) -> str:
    """An answer as a chart labels it: yes/no for booleans, numbers as written."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def percent(part: int, whole: int) -> str:
    """`part` of `whole` as a whole percentage, or a dash when there is no whole."""
    return f"{round(100 * part / whole)}%" if whole else "–"
