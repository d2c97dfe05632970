"""The item language guess the parser records."""

from __future__ import annotations

from monitor.feeds.language import guess_language


def test_guess_language() -> None:
    assert guess_language("Президент России провёл переговоры") == "ru"
    assert guess_language("The president held talks in Moscow") == "en"
    assert guess_language("12 34") == ""
    assert guess_language("Заявление по New START сделал МИД России") == "ru"  # mixed: the majority script
