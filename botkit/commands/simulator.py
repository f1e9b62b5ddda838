"""botkit simulator: a standalone emulator of the gateway."""

from __future__ import annotations

import argparse

from ..addresses import SIMULATOR_NUMBER

NAME = "simulator"
HELP = "run a standalone emulator of the gateway"
DESCRIPTION = (
    "Emulate the Mobile Gateway HTTPS API v2 (and v1 error codes): GET /message takes "
    "MTs and answers as the gateway would; DLRs and MOs from simulated handsets go to "
    "the callback URLs, each retried with the same parameters until answered 200 (for "
    "about a minute); the phone page is at /. It plays an account with --numbers (MTs by "
    "class come from the first), --classes and --masks: an MT from another source or "
    "class is refused with 'Failed to queue message' (the simulator's choice: the spec "
    "names no error for it), an unknown mask is ignored. MOs carry reply_to only with "
    "--number-sequence. POST /api/faults with JSON such as "
    '{"status": 503, "seconds": 5} makes the gateway fail for a while (see '
    "botkit.faults); DELETE /api/faults heals it."
)
# As a real gateway does, keep retrying a callback across an app's restart: 60 retries,
# backing off from 0.1 s to at most 1 s between them.
CALLBACK_RETRIES, CALLBACK_BACKOFF, CALLBACK_BACKOFF_CAP = 60, 0.1, 1.0
EXAMPLES = """\
  botkit simulator --port 9000 \\
    --mo-url http://127.0.0.1:8000/callbacks/TOKEN/mo \\
    --dlr-url http://127.0.0.1:8000/callbacks/TOKEN/dlr \\
    --numbers 4433,+61400999000 --masks ACME"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9000, help="port to listen on")
    parser.add_argument("--mo-url", required=True, help="where to send MO callbacks")
    parser.add_argument("--dlr-url", required=True, help="where to send DLR callbacks")
    parser.add_argument("--application", default="botkit", help="application name to accept")
    parser.add_argument("--password", default="simulator", help="password to accept (a test one)")
    parser.add_argument(
        "--numbers",
        type=_numbers,
        default=(SIMULATOR_NUMBER,),
        help=f"our numbers, comma-separated, the default first (default: {SIMULATOR_NUMBER})",
    )
    parser.add_argument(
        "--classes",
        type=_names,
        default=("mt_message",),
        help="message classes the account has, comma-separated (default: mt_message)",
    )
    parser.add_argument(
        "--masks",
        type=_names,
        default=(),
        help="masks the account has, comma-separated, case-sensitive (default: none)",
    )
    parser.add_argument(
        "--number-sequence",
        action="store_true",
        help="MOs name the MT they answer (reply_to), as with a number sequence",
    )


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from ..logs import setup_logging
    from ..simulator import Simulator

    setup_logging()
    simulator = Simulator(
        application=args.application,
        password=args.password,
        mo_url=args.mo_url,
        dlr_url=args.dlr_url,
        numbers=args.numbers,
        classes=args.classes,
        masks=args.masks,
        number_sequence=args.number_sequence,
        callback_retries=CALLBACK_RETRIES,
        callback_backoff=CALLBACK_BACKOFF,
        callback_backoff_cap=CALLBACK_BACKOFF_CAP,
    )
    base = f"http://{args.host}:{args.port}"
    print(f"botkit simulator: gateway at {base}/message, phone page at {base}/", flush=True)
    uvicorn.run(simulator.app, host=args.host, port=args.port, access_log=False, log_config=None)
    return 0


def _numbers(text: str) -> tuple[str, ...]:
    """--numbers: comma-separated short codes or international numbers, none twice."""
    from ..errors import ValidationError
    from ..simulator import account_numbers

    try:
        return account_numbers(_names(text), "--numbers").numbers
    except ValidationError as exc:  # argparse names the option itself
        raise argparse.ArgumentTypeError(exc.reason) from None


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names, each trimmed; none may be empty."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty name")
    return names
