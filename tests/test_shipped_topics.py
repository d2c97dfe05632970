"""The shipped watchlist on a readout that touches several topics (text written for this test)."""

from __future__ import annotations

from pathlib import Path

from monitor import config as cfg
from monitor.match.classify import TopicModel

ROOT = Path(__file__).parent.parent

READOUT = """\
Президенты России и Франции провели телефонный разговор. Главы государств обсудили вопросы стратегической
стабильности и подчеркнули важность сохранения механизмов контроля над вооружениями, в том числе после
прекращения действия ДРСМД. Условлено продолжить консультации министров иностранных дел и обороны.

Затрагивалась также тематика пандемии, сотрудничества в области здравоохранения и поставок вакцин, обсуждались
торгово-экономические связи, культурные обмены, перекрёстный год языков и литератур, совместные проекты в
энергетике и авиастроении, а также подготовка к очередному заседанию межправительственной комиссии.

Стороны выразили озабоченность продолжением боевых действий в Ливии и высказались за прекращение огня и
возобновление межливийского диалога.
"""


def test_a_readout_matches_its_topics_and_nothing_unrelated() -> None:
    config = cfg.load(str(ROOT / "config.yaml"), env={})
    model = TopicModel.build(config.topics, config.example_texts, [])
    matches = {m.topic: m for m in model.classify("Путин и Макрон провели телефонный разговор", READOUT)}
    matched = {topic for topic, m in matches.items() if m.matched}
    assert {"strategic-stability", "libya"} <= matched
    assert not matched & {"dprk", "iran-nuclear", "syria"}
    libya = matches["libya"]
    assert "Ливии" in libya.passage  # the paragraph that made it match
    assert libya.keyword_hits
