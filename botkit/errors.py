"""The exceptions botkit raises, in one tree.

BotkitError
├── ValidationError       a value we were given is malformed; names the field
├── TemplateError         an SMS template is missing, does not compile or fails to render
├── HandlerError          a bot handler broke a rule of the handler API
├── BackupError           a backup copy could not be made or failed its integrity check
└── GatewayError          the gateway refused a message or could not be reached
    ├── AuthenticationError     application or password wrong or missing (v2 401, v1 500)
    ├── MissingParameterError   the gateway says a parameter is missing (v2 400, v1 500)
    ├── QueueError              "Failed to queue message": permanent for this message
    └── TransientError          5xx, timeouts, connection failures: worth retrying
                                `may_have_been_accepted` is False only when the
                                request surely never reached the gateway
"""

from __future__ import annotations


class BotkitError(Exception):
    """Base class of every error botkit raises on purpose."""


class ValidationError(BotkitError, ValueError):
    """A value is missing or malformed; `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class TemplateError(BotkitError):
    """An SMS template is missing, does not compile or fails to render."""


class HandlerError(BotkitError):
    """A handler broke a rule of the handler API (for example, data that is not JSON)."""


class BackupError(BotkitError):
    """A backup copy of the database could not be made, or failed its integrity check."""


class GatewayError(BotkitError):
    """The gateway refused a message or could not be reached.

    `text` is the gateway's own answer (or a description of the network failure),
    with the password already redacted.
    """

    permanent = True

    def __init__(self, text: str, *, status_code: int | None = None) -> None:
        self.text = text
        self.status_code = status_code
        super().__init__(text)


class AuthenticationError(GatewayError):
    """The application or password is missing or wrong (or the IP is not allowed)."""


class MissingParameterError(GatewayError):
    """The gateway says a parameter is missing; `name` is that parameter."""

    def __init__(self, text: str, *, name: str, status_code: int | None = None) -> None:
        self.name = name
        super().__init__(text, status_code=status_code)


class QueueError(GatewayError):
    """The gateway could not create the message (bad or unrouted destination)."""


class TransientError(GatewayError):
    """A failure worth retrying later.

    `may_have_been_accepted` is False only when the request surely never reached
    the gateway (the connection was never made) or the gateway said it did not take
    it on (503, 429); otherwise it may have queued the message and a resend could
    deliver it twice.
    """

    permanent = False

    def __init__(
        self, text: str, *, may_have_been_accepted: bool, status_code: int | None = None
    ) -> None:
        self.may_have_been_accepted = may_have_been_accepted
        super().__init__(text, status_code=status_code)
