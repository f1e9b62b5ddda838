"""hello: asks your name, remembers it, and greets you by name next time.

Text HELLO (or HI) to start; NAME to change the name it knows you by.
"""

from botkit import Bot, Context

bot = Bot("hello")

MAX_NAME = 40


GREETINGS = ("HELLO", "HI", "HEY")


@bot.keyword(GREETINGS[0], aliases=list(GREETINGS[1:]))
async def hello(ctx: Context) -> None:
    name = ctx.data.get("name")
    if name:
        ctx.reply("hello/welcome_back.txt", name=name)
    else:
        ctx.reply("hello/ask_name.txt")
        ctx.state = "ask_name"


@bot.keyword("NAME")
async def change_name(ctx: Context) -> None:
    ctx.reply("hello/ask_name.txt")
    ctx.state = "ask_name"


@bot.state("ask_name")
async def got_name(ctx: Context) -> None:
    name = " ".join(ctx.text.split())
    if name.upper() in GREETINGS:  # HELLO again (or a START, then HELLO): no name yet
        ctx.reply("hello/ask_name.txt")
        return
    if not name or len(name) > MAX_NAME:
        ctx.reply("hello/ask_name_again.txt", limit=MAX_NAME)
        return
    ctx.data["name"] = name
    ctx.state = None
    ctx.reply("hello/greet.txt", name=name)


@bot.fallback
async def fallback(ctx: Context) -> None:
    ctx.reply("hello/help.txt", keywords=ctx.keywords)
