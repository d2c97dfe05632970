"""Feed bodies for the end-to-end tests: an RSS document of (guid, title, text) items, and one statement told by
three outlets in their own words (written for these tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

from tests.fakes import T0


def rss(items: Sequence[tuple[str, str, str]], *, published: datetime = T0) -> bytes:
    entries = "".join(
        f"<item><guid>{escape(guid)}</guid><title>{escape(title)}</title>"
        f"<link>https://news.example/{escape(guid)}</link><description>{escape(text)}</description>"
        f"<pubDate>{format_datetime(published - timedelta(minutes=10 - i))}</pubDate></item>"
        for i, (guid, title, text) in enumerate(items)
    )
    channel = f"<channel><title>T</title>{entries}</channel>"
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0">{channel}</rss>'.encode()


# One statement, three outlets, three wordings.


# One statement, three outlets, three wordings.
READOUT = [
    (
        "interfax-1",
        "Путин и Макрон призвали к прекращению огня в Ливии",
        "Президенты России и Франции Владимир Путин и Эммануэль Макрон в ходе телефонного разговора выразили "
        "озабоченность продолжением боевых действий в Ливии и высказались за незамедлительное прекращение огня "
        "и возобновление межливийского диалога, сообщила пресс-служба Кремля.",
    ),
    (
        "tass-1",
        "Кремль: Путин и Макрон выступили за перемирие в Ливии",
        "Владимир Путин и Эммануэль Макрон в телефонном разговоре высказались за скорейшее прекращение огня в "
        "Ливии и возобновление межливийского диалога, говорится в сообщении пресс-службы Кремля по итогам беседы "
        "президентов России и Франции.",
    ),
    (
        "ria-1",
        "Путин и Макрон обсудили ситуацию в Ливии",
        "Президенты России и Франции обсудили по телефону ситуацию в Ливии. Владимир Путин и Эммануэль Макрон "
        "выступили за незамедлительное прекращение огня и межливийский диалог, сообщили в Кремле.",
    ),
]
