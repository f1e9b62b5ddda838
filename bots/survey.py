"""survey: a short customer-satisfaction survey, started by SURVEY or by a broadcast.

A rating from 1 to 5 (a low one asks what went wrong, a good one what they liked), then
whether they would recommend us. Unanswered for four hours, a question is sent once
more; a day without an answer ends the survey as incomplete. To ask a list of customers:

    botkit broadcast --csv customers.csv --survey satisfaction
"""

from datetime import timedelta

from botkit import Bot, Question, Survey

bot = Bot("survey")

satisfaction = Survey(
    "satisfaction",
    [
        Question.rating(
            "rating",
            "Thanks for choosing us! How did we do, from 1 (poor) to 5 (great)?",
            next={1: "wrong", 2: "wrong"},
        ),
        Question.text("liked", "Glad to hear it! What did you like most?", next="recommend"),
        Question.text("wrong", "Sorry we let you down. What went wrong?"),
        Question.yes_no("recommend", "Would you recommend us to a friend? YES or NO"),
    ],
    closing="survey/thanks.txt",
    reminder=timedelta(hours=4),
    expiry=timedelta(days=1),
).attach(bot, keyword="SURVEY")
