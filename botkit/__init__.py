"""botkit: two-way SMS bots for the Mobile Gateway HTTPS API v2.

from botkit import Bot, Context

bot = Bot("hello")

@bot.keyword("HELLO")
async def hello(ctx: Context) -> None:
    ctx.reply("hello/ask_name.txt")
    ctx.state = "ask_name"
"""

from .app import create_app
from .bot import Bot
from .campaign import Campaign
from .contacts import Contact
from .context import Context
from .errors import (
    AuthenticationError,
    BotkitError,
    GatewayError,
    HandlerError,
    MissingParameterError,
    QueueError,
    TemplateError,
    TransientError,
    ValidationError,
)
from .gateway import Gateway
from .messages import Message, Reply, Thread, Timer
from .optin import DoubleOptIn
from .questions import Question
from .settings import Settings
from .simulator import Simulator
from .survey import Survey

__all__ = [
    "AuthenticationError",
    "Bot",
    "BotkitError",
    "Campaign",
    "Contact",
    "Context",
    "DoubleOptIn",
    "Gateway",
    "GatewayError",
    "HandlerError",
    "Message",
    "MissingParameterError",
    "Question",
    "QueueError",
    "Reply",
    "Settings",
    "Simulator",
    "Survey",
    "TemplateError",
    "Thread",
    "Timer",
    "TransientError",
    "ValidationError",
    "create_app",
]

__version__ = "0.1.0"
