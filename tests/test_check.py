"""`botkit check`: each kind of problem found in a fixture folder that has just that
problem, reported with its file and line, by the function, the command and the console
script; the example bots check clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from botkit.check import Problem, check, display_path
from botkit.cli import main
from botkit.testing import Harness

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "check"
BOTKIT = str(Path(sys.executable).parent / "botkit")

Enter = Callable[[Path], Path]

# Each fixture folder (bots/ and templates/) and what `botkit check` prints for it, less
# the summary line. Each line names the file and line of the problem.
EXPECTED = {
    "reserved_keyword": [
        "bots/book.py:13: reserved-keyword: keyword CANCEL of bot 'book' is a compliance word: "
        "a message that is CANCEL alone (in any case, spacing or punctuation) opts the "
        "handset out of the number it texted before any bot sees it; 'CANCEL <more words>' "
        "goes to book.cancel like any keyword; to use CANCEL as a keyword remove it from "
        "stop_words (BOTKIT_STOP_WORDS)",
        "bots/shop.py:8: reserved-keyword: keyword HELP of bot 'shop' is a compliance word: "
        "a message that is HELP alone (in any case, spacing or punctuation) is answered with "
        "the help text before any bot sees it; 'HELP <more words>' goes to shop.shop like any "
        "keyword; to use HELP as a keyword remove it from help_words (BOTKIT_HELP_WORDS)",
    ],
    "import_error": [
        "bots/broken.py:11: import-error: KeyError: 'BOTKIT_CHECK_FIXTURE_UNSET_KEY'",
    ],
    "duplicate_bot": [
        "bots/club_copy.py:7: duplicate-bot: bot name 'club' is already taken by the bot "
        "at bots/club.py:5",
    ],
    "duplicate_keyword": [
        "bots/gym.py:9: duplicate-keyword: keyword SIGNUP of bot 'gym' is already claimed "
        "by bot 'club' at bots/club.py:8",
    ],
    "unrouted_state": [
        "bots/club.py:29: unrouted-state: state 'ask_age' is never set in bots/club.py, "
        "so its handler never runs",
    ],
    "unknown_state": [
        "bots/club.py:18: unknown-state: state 'confirm' is set, but bot 'club' has no handler",
        "bots/club.py:23: unknown-state: state 'ask_nmae' is set, but bot 'club' has no "
        "handler; did you mean 'ask_name'?",
    ],
    "unknown_timer": [
        "bots/book.py:15: unknown-timer: timer 'nudg' is scheduled, but bot 'book' has no "
        "handler; did you mean 'nudge'?",
        "bots/book.py:18: unknown-timer: timer 'chase' is scheduled, but bot 'book' has no handler",
    ],
    "unscheduled_timer": [
        "bots/book.py:16: unscheduled-timer: timer 'nudge' is never scheduled in "
        "bots/book.py, so its handler runs only when a broadcast starts it (botkit "
        "broadcast --start book:nudge)",
    ],
    "missing_variable": [
        "bots/pizza.py:12: missing-variable: template 'pizza/confirmed.txt' uses 'size', "
        "which this reply does not pass (it passes 'sise': a typo?)",
        "bots/pizza.py:14: missing-variable: template 'pizza/menu.txt' uses 'shop', which "
        "this reply does not pass",
    ],
    "missing_template": [
        "bots/club.py:14: missing-template: template 'club/ask_name.txt' does not exist "
        "in templates/",
        "bots/club.py:19: missing-template: template 'club/welcom.txt' does not exist in "
        "templates/; did you mean 'club/welcome.txt'?",
        "bots/deals.py:10: missing-template: template 'deals/confirm.txt' does not exist "
        "in templates/",
        "templates/club/welcome.txt:2: missing-template: included template "
        "'club/_footer.txt' does not exist",
    ],
    "template_error": [
        "templates/club/help.txt:3: template-error: Encountered unknown tag 'endif'.",
        "templates/club/welcome.txt:2: template-error: No filter named 'shout'.",
    ],
    "missing_language": [
        "templates/club/help.txt:1: missing-language: club/help.txt has no mi version "
        "(club/welcome.mi.txt is one): mi speakers get the default; add club/help.mi.txt",
    ],
    "no_default": [
        "templates/club/goodbye.es.txt:1: no-default: the es version of club/goodbye.txt, "
        "which does not exist: there is no default for other languages to fall back to",
    ],
    "language_name": [
        "templates/club/welcome.pt_BR.txt:1: language-name: botkit looks for this pt-br "
        "version as club/welcome.pt-br.txt",
    ],
    "field_conflict": [
        "bots/b.py:5: field-conflict: field 'due' of bot 'b' is a text, but a date at bots/a.py:5",
    ],
    "campaign_field": [
        "bots/visits.py:9: campaign-field: campaign 'reminders' follows field 'visit_onn', "
        "which no bot declares: it must be a date or datetime; did you mean 'visit_on'?",
        "bots/visits.py:12: campaign-field: campaign 'by_clinic' follows field 'clinic', "
        "which is a text: it must be a date or datetime",
        "bots/visits.py:13: campaign-field: template 'visits/soon.txt' of campaign 'soon' "
        "reads contact field 'visit_onn', which no bot declares; did you mean 'visit_on'?",
        "bots/visits.py:13: campaign-field: template 'visits/soon.txt' of campaign 'soon' "
        "uses 'clinic_phone', which a campaign's template is not given (it gets `contact`, "
        "and what .event(...) passes)",
    ],
    "too_long": [
        "bots/club.py:19: too-long: reply takes 4 segments as GSM-7 (512 units), "
        "over the limit of 3",
        "templates/club/timetable.txt:1: too-long: with each variable as 12 characters, "
        "it takes 5 segments as UCS-2 (297 units), over the limit of 3; replied at "
        "bots/club.py:24",
    ],
}


def problem_lines(problems: list[Problem]) -> list[str]:
    return [f"{display_path(p.file)}:{p.line}: {p.kind}: {p.message}" for p in problems]


@pytest.fixture
def in_folder(monkeypatch: pytest.MonkeyPatch) -> Enter:
    """Run from a folder with no BOTKIT_ settings in the environment, as a user would."""
    for name in [name for name in os.environ if name.startswith("BOTKIT_")]:
        monkeypatch.delenv(name)

    def enter(folder: Path) -> Path:
        monkeypatch.chdir(folder)
        return folder

    return enter


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_check_finds_the_one_kind_of_problem_in_each_fixture(
    fixture: str, in_folder: Enter
) -> None:
    folder = in_folder(FIXTURES / fixture)
    problems = check(folder / "bots", folder / "templates")
    assert problem_lines(problems) == EXPECTED[fixture]
    assert {p.kind for p in problems} == {fixture.replace("_", "-")}
    assert all(p.file.is_file() for p in problems)


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_command_prints_each_problem_and_exits_1(
    fixture: str, in_folder: Enter, capsys: pytest.CaptureFixture[str]
) -> None:
    in_folder(FIXTURES / fixture)
    assert main(["check"]) == 1
    *lines, summary = capsys.readouterr().out.splitlines()
    assert lines == EXPECTED[fixture]
    files = len({line.split(":")[0] for line in lines})
    problems = f"{len(lines)} problem{'s' if len(lines) > 1 else ''}"
    assert summary == f"botkit check: {problems} in {files} file{'s' if files > 1 else ''}"


def test_clean_fixture_checks_clean(in_folder: Enter, capsys: pytest.CaptureFixture[str]) -> None:
    # It has a bot module named _shared.py that raises if imported, an HTML page far longer
    # than three segments under templates/dashboard/, keywords in two bots, states set from
    # a constant and a conditional expression, and templates using filters, loops,
    # attributes, method calls, and a loop that unpacks pairs, which stand-ins cannot be.
    in_folder(FIXTURES / "clean")
    assert check("bots", "templates") == []
    assert main(["check", "--bots", "bots", "--templates", "templates"]) == 0
    assert capsys.readouterr().out == "botkit check: no problems found\n"


def test_example_bots_check_clean(in_folder: Enter, capsys: pytest.CaptureFixture[str]) -> None:
    in_folder(ROOT)
    assert check(ROOT / "bots", ROOT / "templates") == []
    assert main(["check"]) == 0
    assert capsys.readouterr().out == "botkit check: no problems found\n"


def test_max_segments_sets_the_limit(in_folder: Enter, capsys: pytest.CaptureFixture[str]) -> None:
    in_folder(FIXTURES / "too_long")
    assert main(["check", "--max-segments", "5"]) == 0
    assert main(["check", "--max-segments", "4"]) == 1
    out = capsys.readouterr().out
    assert "templates/club/timetable.txt:1: too-long: " in out
    assert "bots/club.py:19" not in out


def test_max_segments_must_be_positive(
    in_folder: Enter, capsys: pytest.CaptureFixture[str]
) -> None:
    in_folder(FIXTURES / "clean")
    with pytest.raises(SystemExit) as exited:
        main(["check", "--max-segments", "0"])
    assert exited.value.code == 2
    assert "'0' is not a whole number of at least 1" in capsys.readouterr().err


def test_missing_bots_folder_exits_2(in_folder: Enter, capsys: pytest.CaptureFixture[str]) -> None:
    in_folder(FIXTURES / "clean")
    assert main(["check", "--bots", "nowhere"]) == 2
    assert capsys.readouterr().err == "botkit: bots folder nowhere/ does not exist\n"


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


CLUB_WITHOUT_CONFIRM = """\
from botkit import Bot, Context

bot = Bot("club")


@bot.keyword("JOIN")
async def join(ctx: Context) -> None:
    ctx.state = "confirm"
"""


def test_syntax_error_reported_and_other_modules_still_checked(tmp_path: Path, in_folder) -> None:
    write(
        tmp_path,
        {
            "bots/broken.py": 'from botkit import Bot\n\nbot = Bot("broken"\n\nx = 1\n',
            "bots/club.py": CLUB_WITHOUT_CONFIRM,
        },
    )
    in_folder(ROOT)  # not under tmp_path: files are shown absolute
    problems = check(tmp_path / "bots", tmp_path / "templates")
    assert [(p.file, p.line, p.kind) for p in problems] == [
        (tmp_path / "bots" / "broken.py", 3, "import-error"),
        (tmp_path / "bots" / "club.py", 8, "unknown-state"),
    ]
    assert problems[0].message.startswith("SyntaxError: '(' was never closed")
    assert display_path(problems[0].file) == str(tmp_path / "bots" / "broken.py")


def test_keyword_twice_in_one_bot_is_an_import_error_at_its_decorator(
    tmp_path: Path, in_folder: Enter
) -> None:
    source = CLUB_WITHOUT_CONFIRM.replace('"confirm"', "None") + (
        '\n\n@bot.keyword("MEMBER", aliases=["join"])\n'
        "async def member(ctx: Context) -> None:\n"
        "    pass\n"
    )
    write(tmp_path, {"bots/club.py": source})
    in_folder(tmp_path)
    [problem] = check("bots", "templates")
    assert (display_path(problem.file), problem.line, problem.kind) == (
        "bots/club.py",
        11,
        "import-error",
    )
    assert problem.message == "ValueError: club: keyword JOIN is registered twice"


def test_names_known_only_at_run_time_leave_handlers_unjudged(tmp_path: Path, in_folder) -> None:
    # Any state handler may be the one `ctx.state = ctx.data["next"]` sets, and any timer
    # the one `ctx.schedule(ctx.data["timer"])` schedules, so none is reported unrouted or
    # unscheduled; a constant that names no handler still is.
    source = CLUB_WITHOUT_CONFIRM + (
        '    ctx.state = ctx.data["next"]\n'
        '    ctx.schedule(ctx.data["timer"], minutes=5)\n'
        '    ctx.schedule("nudg", minutes=5)\n\n\n'
        '@bot.state("confirm")\n'
        "async def confirm(ctx: Context) -> None:\n"
        '    ctx.state = "done"\n\n\n'
        '@bot.state("waiting")\n'
        "async def waiting(ctx: Context) -> None:\n"
        "    pass\n\n\n"
        '@bot.timer("nudge")\n'
        "async def nudge(ctx: Context) -> None:\n"
        "    pass\n"
    )
    write(tmp_path, {"bots/club.py": source})
    in_folder(tmp_path)
    assert [(p.line, p.kind, p.message) for p in check("bots", "templates")] == [
        (11, "unknown-timer", "timer 'nudg' is scheduled, but bot 'club' has no handler; "
         "did you mean 'nudge'?"),
        (16, "unknown-state", "state 'done' is set, but bot 'club' has no handler"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fixture", "status", "first_line"),
    [
        ("clean", 0, "botkit check: no problems found"),
        ("duplicate_keyword", 1, EXPECTED["duplicate_keyword"][0]),
    ],
)
def test_console_script_in_a_fixture_folder(fixture: str, status: int, first_line: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOTKIT_")}
    done = subprocess.run(
        [BOTKIT, "check"],
        cwd=FIXTURES / fixture,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (status, "")
    assert done.stdout.splitlines()[0] == first_line


PROMO = """from botkit import Bot, Context

bot = Bot("promo", mask="ClinicCo")
plain = Bot("plain")


@plain.keyword("DEAL")
async def deal(ctx: Context) -> None:
    ctx.reply("Half price today.", mask="Shop")
    ctx.reply("Or ask us.", mask=None)
"""


def test_masks_are_flagged_only_when_we_have_several_numbers(
    tmp_path: Path, in_folder: Enter, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, {"bots/promo.py": PROMO, "templates/.keep": ""})
    in_folder(tmp_path)
    assert main(["check"]) == 0  # one number (the simulator's): every reply can carry one
    capsys.readouterr()
    (tmp_path / "botkit.toml").write_text('numbers = "4433,+61400999000"\n')
    assert main(["check"]) == 1
    fails = "fails in a conversation on +61400999000: only the default number 4433 takes one"
    assert capsys.readouterr().out.splitlines() == [
        f"bots/promo.py:3: mask-off-default: bot 'promo' sets mask 'ClinicCo': each of its "
        f"replies {fails}",
        f"bots/promo.py:9: mask-off-default: a reply with a mask {fails}",
        "botkit check: 2 problems in 1 file",
    ]


def test_a_freed_compliance_word_is_a_keyword_like_any(
    tmp_path: Path, in_folder: Enter, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(FIXTURES / "reserved_keyword", tmp_path, dirs_exist_ok=True)
    (tmp_path / "botkit.toml").write_text('stop_words = ["STOP", "QUIT"]\n')
    in_folder(tmp_path)
    assert main(["check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[:2] for line in lines[:-1]] == [["bots/shop.py:8", "reserved-keyword"]]


async def test_what_check_says_of_a_compliance_keyword_is_what_happens() -> None:
    """CANCEL alone, however written, opts out; CANCEL with more words reaches the bot."""
    async with Harness(FIXTURES / "reserved_keyword" / "bots", ROOT / "templates") as harness:
        phone = harness.phone()
        await phone.send("Cancel my booking")
        phone.expect("Your booking is cancelled.")
        await phone.send(" c-a-n-c-e-l! ")
        phone.expect("You have been unsubscribed")


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("tmie", "time"), ("Time", "time"), ("remindr", "reminder"), ("tiem", "time"),
     ("nothing", None), ("mite", None)],
)  # fmt: skip
def test_did_you_mean_finds_a_swap_a_case_and_a_near_miss(typed, meant):
    from botkit.check_source import closest

    assert closest(typed, ["time", "reminder", "ask_name"]) == meant
