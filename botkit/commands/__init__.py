"""The subcommands of `botkit`, one module each.

A command module has `NAME`, `HELP` (one line for `botkit --help`), `DESCRIPTION`,
`EXAMPLES`, `configure(parser)` to declare its arguments, and `main(args) -> int`.
"""

from __future__ import annotations

from types import ModuleType

from . import (
    backup,
    broadcast,
    check,
    contacts,
    db,
    export,
    init,
    lists,
    migrate,
    run,
    send,
    simulator,
    webhooks,
)

COMMANDS: tuple[ModuleType, ...] = (
    run,
    simulator,
    send,
    init,
    check,
    backup,
    migrate,
    db,
    export,
    broadcast,
    lists,
    contacts,
    webhooks,
)
