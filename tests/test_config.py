"""config.yaml validation: every error names file, line, key path and what was expected."""

from __future__ import annotations

import textwrap
from datetime import time
from pathlib import Path

import pytest

from monitor import config as cfg
from monitor.errors import ConfigError

GOOD = """\
settings:
  timezone: Europe/Moscow
  default_interval: 10m
channels:
  console: {type: console}
feeds:
  - {name: A, url: "https://a.example/rss", interval: 5m}
topics:
  - id: libya
    name: Libya
    keywords: [Ливия]
    examples:
      - {title: "Ливия", text: "Переговоры в Триполи"}
"""


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        cfg.loads(textwrap.dedent(text), name="config.yaml", env=env or {})
    return str(info.value)


def test_good_config_loads_into_frozen_objects() -> None:
    config = cfg.loads(GOOD, name="config.yaml")
    assert config.settings.default_interval == 600
    assert config.feeds[0].interval == 300
    assert config.example_texts["libya"] == (("Ливия", "Переговоры в Триполи"),)
    with pytest.raises(ValueError):
        config.feeds[0].name = "B"  # type: ignore[misc]


BROKEN = [
    (
        "a duration that is not one",
        GOOD.replace("interval: 5m", "interval: fast"),
        'config.yaml:7: feeds[0].interval: expected a duration like 5m, got "fast"',
    ),
    (
        "an unknown key",
        GOOD.replace("  timezone: Europe/Moscow", "  timezone: Europe/Moscow\n  colour: red"),
        "config.yaml:3: settings.colour: unknown key",
    ),
    (
        "a wrong type",
        GOOD.replace("keywords: [Ливия]", "keywords: Ливия"),
        'config.yaml:11: topics[0].keywords: input should be a valid list, got "Ливия"',
    ),
    (
        "a missing required key",
        GOOD.replace("    name: Libya\n", ""),
        "config.yaml:9: topics[0].name: required key is missing",
    ),
    (
        "an unknown channel type",
        GOOD.replace("{type: console}", "{type: pigeon}"),
        'config.yaml:5: channels.console: expected type to be one of console, telegram, email, got "pigeon"',
    ),
    (
        "a notify list naming no channel",
        GOOD.replace("    keywords: [Ливия]", "    keywords: [Ливия]\n    notify: [tg]"),
        'config.yaml:12: topics[0].notify[0]: unknown channel "tg"; channels are: console',
    ),
    (
        "a bad time zone",
        GOOD.replace("Europe/Moscow", "Mars/Olympus"),
        'config.yaml:2: settings.timezone: expected an IANA time zone like "Europe/Moscow", got "Mars/Olympus"',
    ),
    (
        "a duration under a second",
        GOOD.replace("default_interval: 10m", "default_interval: 0s"),
        'config.yaml:3: settings.default_interval: expected a duration of at least 1s, got "0s"',
    ),
    (
        "a URL that is not http",
        GOOD.replace("https://a.example/rss", "ftp://a.example/rss"),
        'config.yaml:7: feeds[0].url: expected an http(s) URL, got "ftp://a.example/rss"',
    ),
    (
        "a topic id that is not a slug",
        GOOD.replace("id: libya", "id: Libya News"),
        'config.yaml:9: topics[0].id: expected a slug of a-z, 0-9, "-" and "_", got "Libya News"',
    ),
    (
        "an unknown topic scope",
        GOOD.replace("id: libya", "id: libya\n    scope: everything"),
        "config.yaml:10: topics[0].scope: input should be 'mentions' or 'about', got \"everything\"",
    ),
    (
        "a duplicate feed name",
        GOOD.replace("feeds:\n", 'feeds:\n  - {name: A, url: "https://b.example/rss"}\n'),
        'config.yaml:8: feeds[1].name: duplicate feed name "A"',
    ),
    (
        "an unknown encoding",
        GOOD.replace("interval: 5m}", "interval: 5m, encoding: klingon}"),
        'config.yaml:7: feeds[0].encoding: expected a known text encoding like "windows-1251", got "klingon"',
    ),
    (
        "a digest without a schedule",
        GOOD.replace("{type: console}", "{type: console, mode: digest}"),
        'config.yaml:5: channels.console: a digest channel needs `every` (e.g. 1h) or `at` (e.g. "08:00")',
    ),
    (
        "bad quiet hours",
        GOOD.replace("{type: console}", "{type: console, quiet_hours: night}"),
        "config.yaml:5: channels.console.quiet_hours: expected a range like \"23:00-07:00\", got 'night'",
    ),
    (
        "a near-miss time that is not one",
        GOOD.replace("  timezone: Europe/Moscow", "  timezone: Europe/Moscow\n  near_misses: soon"),
        "config.yaml:3: settings.near_misses: expected a time in quotes like \"17:00\", or off, got 'soon'",
    ),
    (
        "a near-miss time without quotes (YAML reads 18:00 as the number 1080)",
        GOOD.replace("  timezone: Europe/Moscow", "  timezone: Europe/Moscow\n  near_misses: 18:00"),
        'config.yaml:3: settings.near_misses: expected a time in quotes like "17:00", or off, got 1080',
    ),
    (
        "YAML that does not parse",
        GOOD.replace("feeds:\n", "feeds:\n  - {name: [\n"),
        "config.yaml:8: not valid YAML",
    ),
    (
        "a duplicate key",
        GOOD.replace("settings:\n", "settings:\n  timezone: UTC\n"),
        "config.yaml:3: duplicate key 'timezone'",
    ),
]


@pytest.mark.parametrize(("why", "text", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_names_file_line_key_and_expectation(why: str, text: str, expected: str) -> None:
    assert expected in error_of(text)


@pytest.mark.parametrize(
    ("value", "expected"), [("off", None), ('"off"', None), ('"08:30"', time(8, 30)), (None, time(17))]
)
def test_the_near_miss_time_is_on_by_default_and_can_be_off(value: str | None, expected: time | None) -> None:
    setting = "" if value is None else f"\n  near_misses: {value}"
    text = GOOD.replace("  timezone: Europe/Moscow", "  timezone: Europe/Moscow" + setting)
    assert cfg.loads(text).settings.near_miss_time == expected


def test_quiet_hours_are_parsed_once_into_a_value() -> None:
    config = cfg.loads(GOOD.replace("{type: console}", '{type: console, quiet_hours: "23:00 - 07:00"}'))
    quiet = config.channels["console"].quiet_hours
    assert quiet == cfg.QuietHours(time(23, 0), time(7, 0)) and str(quiet) == "23:00-07:00"
    assert cfg.parse_quiet_hours(quiet) is quiet


def test_durations_print_as_they_are_written() -> None:
    assert [cfg.format_duration(s) for s in (86400, 7200, 300, 90, 0.5)] == ["1d", "2h", "5m", "90s", "0.5s"]
    assert all(cfg.parse_duration(cfg.format_duration(s)) == s for s in (604800, 3600, 61, 1.5))


def test_environment_variables_expand_with_defaults() -> None:
    text = GOOD.replace(
        "  console: {type: console}",
        '  console: {type: console}\n  tg: {type: telegram, bot_token: "${TOKEN}", chat_id: "${CHAT:-42}"}',
    )
    config = cfg.loads(text, env={"TOKEN": "123:abc"})
    channel = config.channels["tg"]
    assert isinstance(channel, cfg.TelegramChannel)
    assert (channel.bot_token, channel.chat_id) == ("123:abc", "42")
    assert "123:abc" not in repr(channel)  # secrets stay out of reprs and logs


def test_a_missing_environment_variable_is_named() -> None:
    tg = '\n  tg: {type: telegram, bot_token: "${TOKEN}", chat_id: 1}'
    text = GOOD.replace("  console: {type: console}", "  console: {type: console}" + tg)
    assert error_of(text) == (
        "config.yaml:6: channels.tg.bot_token: environment variable TOKEN is not set "
        "(set it, or write ${TOKEN:-default})"
    )


def test_examples_are_read_from_globs_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "ex").mkdir()
    (tmp_path / "ex" / "1.txt").write_text("Заголовок\n\nТекст статьи.\n", encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        GOOD.replace('      - {title: "Ливия", text: "Переговоры в Триполи"}', "      - ex/*.txt"), encoding="utf-8"
    )
    config = cfg.load(str(tmp_path / "config.yaml"))
    assert config.example_texts["libya"] == (("Заголовок", "Текст статьи."),)
    assert config.data_dir == tmp_path / "data"
    assert config.database_url == f"sqlite:///{tmp_path / 'data' / 'monitor.db'}"


def test_an_example_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        GOOD.replace('      - {title: "Ливия", text: "Переговоры в Триполи"}', "      - missing/*.txt"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"config.yaml:13: topics\[0\].examples\[0\]: no file matches"):
        cfg.load(str(tmp_path / "config.yaml"))


def test_channels_for_is_the_union_of_notify_lists() -> None:
    text = GOOD.replace("  console: {type: console}", "  console: {type: console}\n  other: {type: console}")
    config = cfg.loads(text)
    assert config.channels_for(["libya"]) == ["console", "other"]
    config = cfg.loads(text.replace("    keywords: [Ливия]", "    keywords: [Ливия]\n    notify: [other]"))
    assert config.channels_for(["libya"]) == ["other"]
    assert config.channels_for([]) == []


def test_shipped_config_is_valid() -> None:
    config = cfg.load(str(Path(__file__).parent.parent / "config.yaml"), env={})
    assert len(config.enabled_feeds) >= 8
    assert {"strategic-stability", "libya"} <= {t.id for t in config.topics}
    assert list(config.channels) == ["console"]
    assert all(config.example_texts[t.id] for t in config.topics)


def test_an_email_digest_needs_a_schedule() -> None:
    mail = "\n  mail: {type: email, host: h, from: a@b.example, to: [c@d.example], mode: digest}"
    text = GOOD.replace("  console: {type: console}", "  console: {type: console}" + mail)
    assert error_of(text) == (
        'config.yaml:6: channels.mail: a digest channel needs `every` (e.g. 1h) or `at` (e.g. "08:00")'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("    name: Libya", "    name: Libya\n    treshold: 0.3"),
            "config.yaml:11: topics[0].treshold: unknown key; did you mean threshold?",
        ),
        (
            GOOD.replace("interval: 5m}", "intervall: 5m}"),
            "config.yaml:7: feeds[0].intervall: unknown key; did you mean interval?",
        ),
        (
            GOOD.replace("{type: console}", "{type: console, moed: digest}"),
            "config.yaml:5: channels.console.moed: unknown key; did you mean mode?",
        ),
        (GOOD.replace("feeds:", "feed:"), "config.yaml:6: feed: unknown key; did you mean feeds?"),
        (
            GOOD.replace("  default_interval", "  zzz: 1\n  default_interval"),
            "config.yaml:3: settings.zzz: unknown key; expected one of: data_dir, database, timezone,",
        ),
    ],
)
def test_an_unknown_key_suggests_the_nearest_valid_one(text: str, expected: str) -> None:
    assert error_of(text).startswith(expected)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (GOOD.replace("    name: Libya", "\tname: Libya"), "a tab character: YAML indents with spaces only"),
        (GOOD.replace("    name: Libya", "    name: Libya: the war"), "a colon followed by a space inside a value"),
        (
            GOOD.replace("keywords: [Ливия]", "keywords: [Ливия, Триполи"),
            "a list in [ ] that is not closed, or a missing comma between its items",
        ),
        (GOOD.replace('text: "Переговоры в Триполи"}', 'text: "Переговоры в Триполи}'), "a quote that is never closed"),
    ],
)
def test_yaml_syntax_errors_say_what_is_wrong_in_words(text: str, words: str) -> None:
    error = error_of(text)
    assert error.startswith("config.yaml:") and f"not valid YAML: {words}" in error
    assert "(parser: " in error  # and the parser's own message


def test_data_dir_defaults_to_the_state_directory_under_systemd(tmp_path: Path) -> None:
    state = {"STATE_DIRECTORY": "/var/lib/topic-monitor"}
    assert cfg.loads(GOOD, env=state).data_dir == Path("/var/lib/topic-monitor")
    assert cfg.loads("", env=state).data_dir == Path("/var/lib/topic-monitor")
    named = GOOD.replace("  timezone:", "  data_dir: /srv/monitor\n  timezone:")
    assert cfg.loads(named, env=state).data_dir == Path("/srv/monitor")  # the file wins
    assert cfg.loads(GOOD, name=str(tmp_path / "c.yaml")).data_dir == tmp_path / "data"  # without systemd


def test_config_directories_follow_systemd_then_xdg() -> None:
    env = {"CONFIGURATION_DIRECTORY": "/etc/topic-monitor:/etc/other", "HOME": "/home/a"}
    dirs = [Path("/etc/topic-monitor"), Path("/etc/other"), Path("/home/a/.config/topic-monitor")]
    assert cfg.config_dirs(env) == dirs
    assert cfg.default_config_dir({"XDG_CONFIG_HOME": "/x", "HOME": "/home/a"}) == Path("/x/topic-monitor")
    assert cfg.config_candidates("given.yaml", env) == ["given.yaml"]
    assert cfg.config_candidates(None, {**env, "MONITOR_CONFIG": "m.yaml"}) == ["m.yaml"]
    assert cfg.config_candidates(None, env)[0] == "config.yaml"
    with pytest.raises(ConfigError, match="no config directory"):
        cfg.default_config_dir({})
