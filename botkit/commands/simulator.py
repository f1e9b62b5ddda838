"""botkit simulator: a standalone emulator of the gateway."""

from __future__ import annotations

import argparse

NAME = "simulator"
HELP = "run a standalone emulator of the gateway"
DESCRIPTION = (
    "Emulate the Mobile Gateway HTTPS API v2 (and v1 error codes): GET /message takes "
    "MTs and answers as the gateway would; DLRs and MOs from simulated handsets go to "
    "the callback URLs, each retried with the same parameters until answered 200 (for "
    "about a minute); the phone page is at /. POST /api/faults with JSON such as "
    '{"status": 503, "seconds": 5} makes the gateway fail for a while (see '
    "botkit.simulator); DELETE /api/faults heals it."
)
# As a real gateway does, keep retrying a callback across an app's restart: 60 retries,
# backing off from 0.1 s to at most 1 s between them.
CALLBACK_RETRIES, CALLBACK_BACKOFF, CALLBACK_BACKOFF_CAP = 60, 0.1, 1.0
EXAMPLES = """\
  botkit simulator --port 9000 \\
    --mo-url http://127.0.0.1:8000/callbacks/TOKEN/mo \\
    --dlr-url http://127.0.0.1:8000/callbacks/TOKEN/dlr"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9000, help="port to listen on")
    parser.add_argument("--mo-url", required=True, help="where to send MO callbacks")
    parser.add_argument("--dlr-url", required=True, help="where to send DLR callbacks")
    parser.add_argument("--application", default="botkit", help="application name to accept")
    parser.add_argument("--password", default="simulator", help="password to accept (a test one)")


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
        callback_retries=CALLBACK_RETRIES,
        callback_backoff=CALLBACK_BACKOFF,
        callback_backoff_cap=CALLBACK_BACKOFF_CAP,
    )
    base = f"http://{args.host}:{args.port}"
    print(f"botkit simulator: gateway at {base}/message, phone page at {base}/", flush=True)
    uvicorn.run(simulator.app, host=args.host, port=args.port, access_log=False, log_config=None)
    return 0
