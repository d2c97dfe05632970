"""The `monitor` commands end to end against a local feed server and the Telegram stand-in.

Commands run in this process (`main(argv)`, output captured): a subprocess costs a second of imports a call.
Only what needs a process of its own starts one: a closed stdout pipe, and what a fresh process imports.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from monitor.cli import main
from tests.feedserver import FeedServer, feed_server_fixture  # noqa: F401
from tests.tgstub import TelegramStub

ROOT = Path(__file__).parent.parent


def rss(items: list[tuple[str, str, str]], *, encoding: str = "utf-8", declare: bool = True) -> bytes:
    """An RSS 2.0 document of (guid, title, description) items, encoded as asked."""
    start = datetime.now(UTC) - timedelta(hours=1)
    entries = "".join(
        f"<item><guid>{escape(guid)}</guid><title>{escape(title)}</title>"
        f"<link>https://news.example/{escape(guid)}</link><description>{escape(text)}</description>"
        f"<pubDate>{format_datetime(start + timedelta(minutes=i))}</pubDate></item>"
        for i, (guid, title, text) in enumerate(items)
    )
    decl = f'<?xml version="1.0" encoding="{encoding}"?>' if declare else '<?xml version="1.0"?>'
    doc = f'{decl}<rss version="2.0"><channel><title>Test</title><link>https://news.example/</link>{entries}</channel></rss>'
    return doc.encode(encoding)


LIBYA = (
    "libya-1",
    "Стороны ливийского конфликта договорились о прекращении огня",
    "Правительство в Триполи и армия Халифы Хафтара договорились о прекращении огня в Ливии "
    "при посредничестве ООН. Москва призвала к межливийскому диалогу.",
)
WEATHER = ("weather-1", "В Москве ожидается снег", "Синоптики обещают снегопад и гололёд в выходные.")


def write_config(tmp_path: Path, server: FeedServer, extra_feeds: str = "") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""\
            settings:
              data_dir: {tmp_path / "data"}
              timezone: Europe/Moscow
            channels:
              console: {{type: console}}
            feeds:
              - {{name: Interfax, url: "{server.url("/cp1251.xml")}"}}
              - {{name: KOI, url: "{server.url("/koi8.xml")}"}}
              - {{name: Broken, url: "{server.url("/broken.xml")}"}}
            {extra_feeds}
            topics:
              - id: libya
                name: Ливия
                description: "Ливия: конфликт между Триполи и армией Хафтара, прекращение огня, нефть."
                keywords: [Ливия, Триполи, Хафтар]
                examples:
                  - title: "Переговоры по Ливии"
                    text: "Стороны ливийского конфликта в Триполи и Бенгази обсудили перемирие и нефть."
            """),
        encoding="utf-8",
    )
    return config


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@contextmanager
def restored_logging() -> Iterator[None]:
    """main() sets up logging for a process; put back what pytest had once the command is done."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quieted = {name: logging.getLogger(name).level for name in ("urllib3", "apscheduler")}
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, old in quieted.items():
            logging.getLogger(name).setLevel(old)


Monitor = Callable[..., Result]


@pytest.fixture
def monitor(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Monitor:
    """`monitor ARGS...` in this process: exit status, stdout, stderr."""
    return runner(capsys, monkeypatch)


def runner(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Monitor:
    """The `monitor` fixture, for other test modules' fixtures."""
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)

    def run(*args: str) -> Result:
        capsys.readouterr()
        with restored_logging():
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: --help, --version, usage errors
                code = exc.code if isinstance(exc.code, int) else 2
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def serve_feeds(server: FeedServer) -> None:
    # windows-1251 declared in the document but not in Content-Type; KOI8-R mislabelled as windows-1251.
    server.route(
        "/cp1251.xml",
        rss([LIBYA, WEATHER], encoding="windows-1251"),
        headers={"Content-Type": "application/rss+xml"},
        etag='"v1"',
    )
    server.route(
        "/koi8.xml",
        rss([("koi-1", "Новости Ливии", "Перемирие в Ливии соблюдается.")], encoding="koi8-r"),
        headers={"Content-Type": "text/xml; charset=koi8-r"},
    )
    server.route("/broken.xml", b"<html><body>Not a feed</body></html>", headers={"Content-Type": "text/html"})


def test_validate_prints_a_summary(monitor: Monitor, tmp_path: Path, feed_server: FeedServer) -> None:
    result = monitor("validate", "--config", str(write_config(tmp_path, feed_server)))
    assert result.returncode == 0, result.stderr
    assert "feeds (3 enabled of 3)" in result.stdout
    assert "libya" in result.stdout


@pytest.mark.slow  # the closed pipe is the point: main() would dup2 over this process's stdout
def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path, feed_server: FeedServer) -> None:
    # `monitor validate | head -1`: the pipe closes before the summary is written.
    config = str(write_config(tmp_path, feed_server))
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed:
        result = subprocess.run(
            [sys.executable, "-m", "monitor", "validate", "--config", config],
            stdout=closed,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
    assert (result.returncode, result.stderr) == (0, "")


def test_validate_reports_a_broken_config_with_its_line(monitor: Monitor, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('feeds:\n  - {name: A, url: "https://a.example/", interval: fast}\n', encoding="utf-8")
    result = monitor("validate", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == f'{config}:2: feeds[0].interval: expected a duration like 5m, got "fast"'


def test_missing_config_is_a_clear_error(monitor: Monitor, tmp_path: Path) -> None:
    result = monitor("check", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml: no such file" in result.stderr


def test_check_polls_stores_matches_and_alerts_to_the_console(
    monitor: Monitor, tmp_path: Path, feed_server: FeedServer
) -> None:
    serve_feeds(feed_server)
    config = str(write_config(tmp_path, feed_server))
    first = monitor("check", "--config", config, "--deliver-timeout", "5")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert any(line.startswith("OK") and "Interfax" in line and "2 new /     2 items" in line for line in lines)
    assert any(line.startswith("OK") and "KOI" in line and "1 new" in line for line in lines)
    assert any(line.startswith("ERROR") and "Broken" in line for line in lines)
    assert "Стороны ливийского конфликта договорились о прекращении огня" in first.stdout  # cp1251 decoded
    assert "Новости Ливии" in first.stdout  # KOI8-R decoded despite the label
    assert "-> Ливия:" in first.stdout
    assert re.search(r"^delivery: sent [1-9]", first.stdout, re.M), first.stdout  # console alerts went out
    # A second run: the ETag gives a 304, nothing is new, nothing is alerted twice.
    second = monitor("check", "--config", config, "--deliver-timeout", "5")
    assert second.returncode == 0, second.stderr
    assert any(line.startswith("304") and "Interfax" in line for line in second.stdout.splitlines())
    assert "Стороны ливийского" not in second.stdout
    assert feed_server.requests_to("/cp1251.xml")[-1].headers.get("if-none-match") == '"v1"'
    feeds = monitor("feeds", "--config", config)
    assert feeds.returncode == 0, feeds.stderr
    broken = next(line for line in feeds.stdout.splitlines() if line.startswith("Broken"))
    assert "error" in broken and " 2 " in broken  # two consecutive errors recorded


def test_check_reads_a_utf8_feed_with_a_stray_byte_and_says_so(
    monitor: Monitor, tmp_path: Path, feed_server: FeedServer
) -> None:
    # Seen: one invalid byte made the charset guess give up on UTF-8: every item mojibake, no alert, status "ok".
    serve_feeds(feed_server)
    body = rss([LIBYA]).replace("Триполи".encode(), "Трип".encode() + b"\xff" + "оли".encode(), 1)
    feed_server.route("/stray.xml", body, headers={"Content-Type": "application/rss+xml; charset=utf-8"})
    stray = f'  - {{name: Stray, url: "{feed_server.url("/stray.xml")}"}}'
    result = monitor("check", "--config", str(write_config(tmp_path, feed_server, stray)), "--deliver-timeout", "5")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if "Stray" in line and "new /" in line]
    assert line.startswith("OK") and line.endswith("warning: 1 byte sequence not valid utf-8, replaced with U+FFFD")
    assert re.search(rf"^\[Stray\] {re.escape(LIBYA[1])}\n.*\n  -> Ливия:", result.stdout, re.M), result.stdout


def test_shipped_config_without_network_reports_every_feed_as_an_error(monitor: Monitor, tmp_path: Path) -> None:
    # The shipped config points at public hosts; they are pointed at a closed loopback port (the conftest guard
    # would refuse the public ones anyway), so each feed must end as an error line, not a crash.
    shipped = (ROOT / "config.yaml").read_text(encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        shipped.replace("data_dir: ./data", f"data_dir: {tmp_path / 'data'}")
        .replace("examples/", f"{ROOT / 'examples'}/")
        .replace("https://", "http://127.0.0.1:9/")
        .replace("http://kremlin", "http://127.0.0.1:9/kremlin")
        .replace("http://en.kremlin", "http://127.0.0.1:9/en.kremlin"),
        encoding="utf-8",
    )
    result = monitor("check", "--config", str(config), "--deliver-timeout", "1")
    assert result.returncode == 0, result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 12


def test_check_beside_a_running_daemon_previews_and_stores_nothing(
    monitor: Monitor, tmp_path: Path, feed_server: FeedServer
) -> None:
    serve_feeds(feed_server)
    config = str(write_config(tmp_path, feed_server))
    hold = (
        "import sys, time; from pathlib import Path; from monitor.delivery.lock import ProcessLock; "
        "assert ProcessLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(tmp_path / "data" / "deliver.lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = monitor("check", "--config", config, "--deliver-timeout", "1")
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
    assert result.returncode == 0, result.stderr
    assert f"the daemon (pid {holder.pid}) polls this data directory: previewing, nothing is stored" in result.stdout
    assert "Новости Ливии" in result.stdout and "-> Ливия:" in result.stdout  # what the daemon will match
    assert f"delivery: left to the running daemon (pid {holder.pid}); it alerts these items itself" in result.stdout
    # The daemon still sees every item as new: a check run without it stores and alerts them.
    alone = monitor("check", "--config", config, "--deliver-timeout", "5")
    assert alone.returncode == 0, alone.stderr
    assert "Новости Ливии" in alone.stdout and re.search(r"^delivery: sent [1-9]", alone.stdout, re.M)


def test_eval_reports_topic_and_story_figures(monitor: Monitor, tmp_path: Path) -> None:
    topics = tmp_path / "topics.yaml"
    topics.write_text(
        textwrap.dedent("""\
            topics:
              - id: libya
                name: Ливия
                keywords: [Ливия, Триполи]
            """),
        encoding="utf-8",
    )
    lines = [
        {
            "id": "1",
            "title": "Перемирие в Ливии",
            "text": "Стороны в Ливии договорились о прекращении огня в Триполи.",
            "topics": ["libya"],
            "story": "a",
        },
        {
            "id": "2",
            "title": "Ливия: прекращение огня",
            "text": "В Ливии договорились о прекращении огня в Триполи.",
            "topics": ["libya"],
            "story": "a",
        },
        {"id": "3", "title": "Снег в Москве", "text": "Синоптики обещают снег в выходные.", "topics": [], "story": "b"},
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    decisions = tmp_path / "out.jsonl"
    result = monitor(
        "eval",
        "--config",
        str(topics),
        "--corpus",
        str(corpus),
        "--warmup",
        "0",
        "--decisions",
        str(decisions),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    libya = summary["topics"]["libya"]
    assert (libya["tp"], libya["fp"], libya["fn"]) == (2, 0, 0)
    assert summary["stories"]["alerts_sent"] == 1 and summary["stories"]["repeated_alerts"] == 0
    assert [json.loads(line)["matched"] for line in decisions.read_text().splitlines()] == [["libya"], ["libya"], []]


ARTICLE = (
    "<html><head><title>Перемирие в Ливии</title><script>var x = 1;</script></head><body>"
    "<nav>Главная · Политика · Экономика</nav><article><h1>Стороны ливийского конфликта договорились о перемирии</h1>"
    + "".join(
        f"<p>Абзац {i}: правительство в Триполи и армия Халифы Хафтара договорились о прекращении огня в Ливии, "
        "сообщили в миссии ООН; переговоры о межливийском диалоге продолжатся на следующей неделе.</p>"
        for i in range(6)
    )
    + "</article><footer>© Новости</footer></body></html>"
)


def test_explain_url_scores_the_article_text(monitor: Monitor, tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.route("/article.html", ARTICLE.encode(), headers={"Content-Type": "text/html; charset=utf-8"})
    path = write_config(tmp_path, feed_server)
    url = feed_server.url("/article.html")
    # A page on a loopback or private address is refused (a link pasted from a feed item can point anywhere).
    refused = monitor("explain", "--config", str(path), "--url", url)
    assert refused.returncode == 1 and feed_server.requests_to("/article.html") == []
    assert "refused to fetch" in refused.stderr and "127.0.0.1 is a loopback address" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    text = path.read_text(encoding="utf-8").replace("settings:\n", "settings:\n  allow_private_fetch: true\n", 1)
    config = str(path)
    path.write_text(text, encoding="utf-8")
    result = monitor("explain", "--config", config, "--url", url, "--json")
    assert result.returncode == 0, result.stderr
    [libya] = json.loads(result.stdout)["topics"]
    assert libya["id"] == "libya" and libya["matched"] is True
    assert "Триполи" in libya["passage"] and "var x" not in libya["passage"]


def test_notify_test_and_alerts_against_the_telegram_stand_in(
    monitor: Monitor, tmp_path: Path, feed_server: FeedServer
) -> None:
    serve_feeds(feed_server)
    with TelegramStub(token="123:cli-token") as stub:
        path = write_config(tmp_path, feed_server)
        tg = f'  tg: {{type: telegram, bot_token: "123:cli-token", chat_id: 42, api_url: "{stub.url}", pace: false}}\n'
        path.write_text(path.read_text(encoding="utf-8").replace("channels:\n", "channels:\n" + tg), encoding="utf-8")
        sent = monitor("notify-test", "tg", "--config", str(path))
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("tg: sent (message ") and "server answered" in sent.stdout
        assert "test message" in stub.texts()[0]
        check = monitor("check", "--config", str(path), "--deliver-timeout", "5")
        assert check.returncode == 0, check.stderr
        alerts = monitor("alerts", "--config", str(path), "--since", "1d")
        assert alerts.returncode == 0, alerts.stderr
        assert "Стороны ливийского конфликта" in alerts.stdout and "tg" in alerts.stdout
        assert any("Стороны ливийского конфликта" in text for text in stub.texts())
        assert "123:cli-token" not in sent.stdout + check.stdout + check.stderr + alerts.stdout
    unknown = monitor("notify-test", "nope", "--config", str(path))
    assert unknown.returncode == 2 and 'no channel "nope"' in unknown.stderr


HEAVY = {"sklearn", "scipy", "pymorphy3", "trafilatura"}
# Run as a fresh interpreter: the exit status, then the heavy modules the command left in sys.modules.
IMPORTS_OF = f"""
import contextlib, io, sys
from monitor.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(code, *sorted({{name.split(".")[0] for name in sys.modules}} & {HEAVY!r}))
"""


@pytest.mark.slow  # a fresh process is the point: this one imported everything long ago
@pytest.mark.parametrize(
    "command", [["--version"], ["--help"], ["validate"], ["feeds"], ["status"], ["alerts"]], ids=" ".join
)
def test_light_commands_import_no_model_machinery(tmp_path: Path, feed_server: FeedServer, command: list[str]) -> None:
    # STYLE.md: `--version`, `--help`, `validate`, `feeds`, `status`, `alerts` load no scikit-learn, SciPy,
    # pymorphy3 or trafilatura (cli.py imports those inside the commands that match or extract).
    config = ["--config", str(write_config(tmp_path, feed_server))] if command[0].isalpha() else []
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF, *command, *config],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert result.stdout.split() == ["0"], result.stdout + result.stderr


def test_check_learn_marks_the_backlog_seen_and_alerts_nothing(
    monitor: Monitor, tmp_path: Path, feed_server: FeedServer
) -> None:
    # Flexget's --learn: adding feeds must not alert their backlog; what comes later does.
    serve_feeds(feed_server)
    config = str(write_config(tmp_path, feed_server))
    learned = monitor("check", "--config", config, "--learn")
    assert learned.returncode == 0, learned.stderr
    assert re.search(r"^learned 3 items \([1-9] matching a topic\) from 3 feeds: marked as seen, nothing alerted",
                     learned.stdout, re.M), learned.stdout  # fmt: skip
    assert "delivery:" not in learned.stdout
    assert monitor("alerts", "--config", config).stdout.strip() == "no alerts"
    # Later: another outlet reports the learned story (quiet), and a new story comes in (alerts).
    retold = ("libya-2", "Стороны ливийского конфликта договорились о прекращении огня в Ливии", LIBYA[2])
    fresh = ("libya-3", "Нефтяные порты Ливии возобновили отгрузки",
             "Национальная нефтяная корпорация Ливии сообщила, что порты на востоке страны возобновили отгрузки "
             "нефти после снятия блокады сторонниками Хафтара.")  # fmt: skip
    feed_server.route(
        "/koi8.xml",
        rss([("koi-1", "Новости Ливии", "Перемирие в Ливии соблюдается."), retold, fresh], encoding="koi8-r"),
        headers={"Content-Type": "text/xml; charset=koi8-r"},
    )
    later = monitor("check", "--config", config, "--deliver-timeout", "5")
    assert later.returncode == 0, later.stderr
    alerts = monitor("alerts", "--config", config).stdout
    assert "Нефтяные порты Ливии" in alerts, later.stdout
    assert "договорились о прекращении огня" not in alerts  # the learned story stays quiet


def test_check_dry_run_stores_and_sends_nothing(monitor: Monitor, tmp_path: Path, feed_server: FeedServer) -> None:
    serve_feeds(feed_server)
    config = str(write_config(tmp_path, feed_server))
    dry = monitor("check", "--config", config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Новости Ливии" in dry.stdout and "-> Ливия:" in dry.stdout
    assert re.search(r"^dry run: 3 new items, [1-9] would alert; nothing stored or sent$", dry.stdout, re.M)
    assert not (tmp_path / "data").exists()  # no database, no model file: the first real run starts from nothing
    real = monitor("check", "--config", config, "--deliver-timeout", "5")
    assert "Новости Ливии" in real.stdout and re.search(r"^delivery: sent [1-9]", real.stdout, re.M)
    # On a data directory that has a database: read, never written.
    feed_server.route(
        "/koi8.xml",
        rss([("koi-2", "Ливия: новости", "Перемирие в Ливии соблюдается.")], encoding="koi8-r"),
        headers={"Content-Type": "text/xml; charset=koi8-r"},
    )
    before = (tmp_path / "data" / "monitor.db").read_bytes()
    again = monitor("check", "--config", config, "--dry-run")
    assert "Ливия: новости" in again.stdout and "dry run: 1 new items" in again.stdout
    assert (tmp_path / "data" / "monitor.db").read_bytes() == before


def test_init_writes_a_starter_config_that_validates(
    monitor: Monitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CONFIGURATION_DIRECTORY", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./config.yaml here: the lookup goes on to the config directory
    result = monitor("init")
    home = tmp_path / "xdg" / "topic-monitor"
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {home / 'config.yaml'} and ")
    topics = sorted(p.name for p in (ROOT / "examples").iterdir())
    assert sorted(p.name for p in (home / "examples").iterdir()) == topics
    assert (home / "daemon.md").read_text(encoding="utf-8") == (ROOT / "docs" / "daemon.md").read_text(encoding="utf-8")
    assert "\n  data_dir:" not in (home / "config.yaml").read_text(encoding="utf-8")  # left to its default
    valid = monitor("validate")  # found without --config
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith(f"{home / 'config.yaml'}: OK") and f"data in {home / 'data'}" in valid.stdout
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))  # as systemd's StateDirectory= sets it
    assert f"data in {tmp_path / 'state'}," in monitor("validate").stdout
    again = monitor("init")
    assert again.returncode == 2 and "exists already; keep it, or write over it with --force" in again.stderr
    assert monitor("init", "--force").returncode == 0
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", str(tmp_path / "etc"))
    assert monitor("init").returncode == 0 and (tmp_path / "etc" / "config.yaml").exists()


def test_init_systemd_prints_the_unit_of_this_installation(monitor: Monitor) -> None:
    result = monitor("init", "--systemd")
    assert result.returncode == 0, result.stderr
    shipped = (ROOT / "systemd" / "topic-monitor.service").read_text(encoding="utf-8")
    assert result.stdout.splitlines()[-1] == shipped.splitlines()[-1]
    [doc] = [line for line in result.stdout.splitlines() if line.startswith("Documentation=")]
    assert Path(doc.removeprefix("Documentation=file://")).is_file()
    assert "/opt/topic-monitor/.venv/bin/monitor" not in result.stdout


def test_the_config_is_looked_up_in_order(monitor: Monitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CONFIGURATION_DIRECTORY", raising=False)
    missing = monitor("validate")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"config.yaml: no such file, nor {tmp_path / 'xdg' / 'topic-monitor' / 'config.yaml'}; write one with "
        "`monitor init`, or use --config PATH or set MONITOR_CONFIG"
    )
    for where in ("xdg/topic-monitor", "etc", "."):
        (tmp_path / where).mkdir(parents=True, exist_ok=True)
        (tmp_path / where / "config.yaml").write_text(f"settings:\n  data_dir: /tmp/{where.replace('/', '-')}\n")
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", str(tmp_path / "etc"))
    assert monitor("validate").stdout.startswith("config.yaml: OK")  # ./config.yaml before the directories
    (tmp_path / "config.yaml").unlink()
    assert monitor("validate").stdout.startswith(f"{tmp_path / 'etc' / 'config.yaml'}: OK")
    monkeypatch.setenv("MONITOR_CONFIG", str(tmp_path / "xdg" / "topic-monitor" / "config.yaml"))
    assert monitor("validate").stdout.startswith(f"{tmp_path / 'xdg'}")


def test_status_says_whether_a_daemon_runs_on_the_data_directory(
    monitor: Monitor, tmp_path: Path, feed_server: FeedServer
) -> None:
    serve_feeds(feed_server)
    config = str(write_config(tmp_path, feed_server))
    never = monitor("status", "--config", config)
    assert never.returncode == 0, never.stderr
    assert never.stdout.startswith(f"daemon: not running (no daemon has run on {tmp_path / 'data'}); never polled")
    monitor("check", "--config", config, "--deliver-timeout", "1")  # takes and releases the lock; polls
    stopped = monitor("status", "--config", config).stdout.splitlines()[0]
    assert stopped.startswith(f"daemon: not running on {tmp_path / 'data'}: nothing is polled until it starts; "
                              "last poll 20")  # fmt: skip
    assert stopped.endswith("(Europe/Moscow)")
    hold = (
        "import sys, time; from pathlib import Path; from monitor.delivery.lock import ProcessLock; "
        "assert ProcessLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(tmp_path / "data" / "deliver.lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        running = monitor("status", "--config", config).stdout.splitlines()[0]
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
    assert re.fullmatch(rf"daemon: running, pid {holder.pid}, since 20\S+ \S+ \(Europe/Moscow\); last poll .*", running)


def test_feeds_shows_the_whole_error(monitor: Monitor, tmp_path: Path, feed_server: FeedServer) -> None:
    # Seen: "cannot connect while fetching https://www.interfax.ru/rss.as" — cut before the cause.
    serve_feeds(feed_server)
    long_path = "/" + "long-" * 20 + ".xml"
    missing = f'  - {{name: Gone, url: "{feed_server.url(long_path)}"}}'
    config = str(write_config(tmp_path, feed_server, missing))
    monitor("check", "--config", config, "--deliver-timeout", "1")
    feeds = monitor("feeds", "--config", config)
    [gone] = [line for line in feeds.stdout.splitlines() if line.startswith("Gone")]
    assert long_path in gone and "404" in gone
    assert "last fetch (Europe/Moscow)" in feeds.stdout.splitlines()[0]


def test_alerts_lists_the_other_sources_of_a_story(monitor: Monitor, tmp_path: Path, feed_server: FeedServer) -> None:
    serve_feeds(feed_server)
    config = str(write_config(tmp_path, feed_server))
    monitor("check", "--config", config, "--deliver-timeout", "5")
    retold = ("libya-2", "Стороны ливийского конфликта договорились о прекращении огня в Ливии", LIBYA[2])
    feed_server.route(
        "/koi8.xml",
        rss([("koi-1", "Новости Ливии", "Перемирие в Ливии соблюдается."), retold], encoding="koi8-r"),
        headers={"Content-Type": "text/xml; charset=koi8-r"},
    )
    monitor("check", "--config", config, "--deliver-timeout", "5")
    alerts = monitor("alerts", "--config", config).stdout
    block = next(b for b in alerts.split("\n#") if LIBYA[1] in b)
    assert "\n    also: KOI\n" in block + "\n", alerts
    assert alerts.rstrip().endswith("(times in Europe/Moscow)")


def test_the_readme_walk_through_does_what_it_says(monitor: Monitor, tmp_path: Path, feed_server: FeedServer) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    walk = readme.split("## Five minutes, locally", 1)[1].split("\n## ", 1)[0]
    local = re.search(r"<<'EOF'\n(.*?)\nEOF\n", walk, re.S)
    assert local is not None
    assert monitor("init", str(tmp_path / "demo")).returncode == 0
    feed_server.route("/feed.xml", (tmp_path / "demo" / "examples" / "feed.xml").read_bytes(),
                      headers={"Content-Type": "application/rss+xml"})  # fmt: skip
    config = tmp_path / "demo" / "local.yaml"
    config.write_text(local.group(1).replace("http://127.0.0.1:8000/", feed_server.url("/")), encoding="utf-8")
    dry = monitor("check", "--dry-run", "--config", str(config))
    assert "dry run: 4 new items, 3 would alert; nothing stored or sent" in dry.stdout, dry.stdout + dry.stderr
    assert "# 4 new items, 3 would alert" in walk
    text = "Хафтар заявил о возобновлении наступления на Триполи"
    assert text in walk
    explained = monitor("explain", "--config", str(config), "--text", text)
    assert re.search(r"^MATCH\s+\S+ / \S+\s+libya \(Libya\)", explained.stdout, re.M), explained.stdout
