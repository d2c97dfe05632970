"""Benchmark N `monitor run` replicas on one PostgreSQL database: 1, 2, 3 replicas on the same local feed farm.

    python bench/replicas.py --database postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/replicas.py --database URL --feeds 1000 --interval 30 --seconds 60 --replicas 1 3

For each replica count, on a fresh database (CREATE DATABASE, dropped after): the feeds of bench/daemon.py's farm
(--feeds on 20 loopback addresses, fixed --interval), the Telegram stand-in in this process, N replicas started
with one config (data_dir from the environment). The warm-up lasts until the cold first cycle is over (every
feed's first poll stored, read from the feeds table; --warmup is only the limit), then --settle seconds; then
matching items are added at --rate per second for --seconds, and this is measured over that steady-state window:

- feeds polled per second: in total (the farm's request count), and per replica (the requests to the feeds
  whose lease the replica holds at the end of the window)
- database transactions per second (pg_stat_database: commits + rollbacks of the bench's database)
- latency from an item appearing on the farm to the first sendMessage (or story edit) that carries it: median, p95, p99;
  an item that joined another's story as a 4th or later member is not in the message's text (it shows two other
  sources and "(+N)"): its story edit's outbox row (sent_at) times it
- what became of every item (`account`): timed, joined a story, still queued, not polled yet, below the line
- CPU of each replica (percent of one core, /proc/<pid>/stat over the window) and its RSS at the end

On a 2-core machine the totals are bounded by the cores: read the per-replica CPU to see the scaling.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from daemon import TOKEN, Farm, Sampler, matching_item, pct, wait_ready  # noqa: E402

from monitor.config import Feed  # noqa: E402
from monitor.delivery.message import ALSO_SHOWN  # noqa: E402
from monitor.service.jobs import poll_job_id  # noqa: E402
from tests.tgstub import TelegramStub  # noqa: E402


def config_text(farm: Farm, stub: TelegramStub, database: str, args: argparse.Namespace) -> str:
    feeds = "".join(
        f'  - {{name: f{i}, url: "{farm.url(i)}", interval: {args.interval}s}}\n' for i in range(len(farm.docs))
    )
    return (
        textwrap.dedent(f"""\
            settings:
              data_dir: "${{REPLICA_DIR}}"
              database: "{database}"
              workers: {args.workers}
              lease: {args.lease}s
              timeout: 10s
            channels:
              tg: {{type: telegram, bot_token: "{TOKEN}", chat_id: 1, api_url: "{stub.url}", pace: false}}
            topics:
              - id: libya
                name: Ливия
                description: "Ливия: конфликт между Триполи и армией Хафтара, прекращение огня, нефть."
                keywords: [Ливия, Триполи, Хафтар]
                examples:
                  - title: "Переговоры по Ливии"
                    text: "Стороны ливийского конфликта в Триполи и Бенгази обсудили перемирие и нефть."
            feeds:
            """)
        + feeds
    )


def xacts(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %(n)s", {"n": name}
        ).one()
    return int(row[0])


def first_polled(engine: sa.Engine) -> int:
    """How many feeds have a stored successful poll: their first poll's items are in the database."""
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM feeds WHERE last_success IS NOT NULL").scalar_one())


def account(
    engine: sa.Engine, added: Mapping[str, float], timed: Collection[str]
) -> tuple[dict[str, int], dict[str, float], dict[str, int]]:
    """What became of each item added in the window (guid -> its wall-clock time), from the database: the
    count of each fate, and the latency of the items that joined another item's story as a later member.

    A story's message shows its first item and ALSO_SHOWN other sources (one per feed), then "(+N)": a 4th
    member's link is in no request's text, though the story's edit for it went out. Its latency is read from
    that edit's outbox row (sent_at, marked right after Telegram answered). Also: story -> how many of the items
    are in it."""
    with engine.connect() as conn:
        stored = dict(conn.exec_driver_sql(
            "SELECT link, uid FROM items WHERE link LIKE 'https://bench.example/bench-%%'"
        ).all())  # fmt: skip
        member = {u: (s, p) for u, s, p in conn.exec_driver_sql("SELECT item_uid, story_id, position FROM story_items")}
        # oldest last, so the story's first alert is the one kept
        alerts = {s: (a, u) for a, s, u in conn.exec_driver_sql(
            "SELECT a.id, a.story_id, i.uid FROM alerts a JOIN items i ON i.id = a.item_id ORDER BY a.id DESC"
        )}  # fmt: skip
        rows = {(a, k, u): (st, at) for a, k, u, st, at in conn.exec_driver_sql(
            "SELECT alert_id, kind, item_uid, status, extract(epoch from sent_at) FROM outbox"
        )}  # fmt: skip
    fate: dict[str, int] = {}
    late: dict[str, float] = {}
    for guid, at in added.items():
        uid = stored.get(f"https://bench.example/{guid}")
        if guid in timed:
            why = "timed: a sendMessage or edit carries its link"
        elif uid is None:
            why = "not stored (its feed not polled since)"
        elif uid not in member:
            why = "stored, not grouped yet"
        elif (story := member[uid][0]) not in alerts:
            why = "in a story with no alert (below the topic's line)"
        elif alerts[story][1] == uid:
            why = f"its own alert, send {rows.get((alerts[story][0], 'send', ''), ('not queued',))[0]}"
        else:
            status, sent = rows.get((alerts[story][0], "edit", uid), ("not queued", None))
            position = member[uid][1] + 1
            if status == "sent" and sent is not None and position > ALSO_SHOWN + 1:
                why = f"timed by its story's edit: joined another item's story as member {ALSO_SHOWN + 2}+"
                late[guid] = float(sent) - at
            else:
                why = f"joined another item's story as member {position}, edit {status}, not in the text"
        fate[why] = fate.get(why, 0) + 1
    sizes: dict[str, int] = {}
    for uid in stored.values():
        if uid in member:
            sizes[member[uid][0]] = sizes.get(member[uid][0], 0) + 1
    # every item was meant as its own story: how far the grouper merged them (story -> items of the window)
    return fate, late, sizes


def warm_up(engine: sa.Engine, farm: Farm, procs: list[subprocess.Popen[bytes]], args: argparse.Namespace) -> float:
    """Wait out the cold first cycle: until every feed's first poll is stored, then --settle seconds more.

    A fixed wait either measures part of the cold cycle (every feed's first 200 with its 3 items, grouped
    under the story lock) or wastes minutes; the feeds table says when it is over. Returns its length."""
    start = time.monotonic()
    while (done := first_polled(engine)) < len(farm.docs):
        if time.monotonic() - start > args.warmup:
            raise SystemExit(f"the cold cycle did not finish within --warmup {args.warmup:.0f}s: {done} feeds polled")
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"a replica exited with {proc.returncode} during the warm-up")
        time.sleep(1)
    cold = time.monotonic() - start
    print(f"    cold cycle: {cold:.0f}s after READY, {min(farm.requests)}+ requests a feed", flush=True)
    time.sleep(args.settle)  # let the first cycle's backlog (outbox, refit) drain before the window
    return cold


def run(count: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    name = f"bench_r{count}_{secrets.token_hex(3)}"
    admin = sa.create_engine(args.database, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(args.database).set(database=name).render_as_string(hide_password=False)
    farm = Farm(args.feeds, 20)
    procs: list[subprocess.Popen[bytes]] = []
    socks: list[socket.socket] = []
    try:
        with TelegramStub(token=TOKEN) as stub:
            config = tmp / f"config{count}.yaml"
            config.write_text(config_text(farm, stub, url, args), encoding="utf-8")
            for n in range(count):
                home = tmp / f"r{count}-{n}"
                home.mkdir()
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(str(home / "notify.sock"))
                sock.settimeout(0.2)
                socks.append(sock)
                env = {**os.environ, "NOTIFY_SOCKET": str(home / "notify.sock"), "REPLICA_DIR": str(home / "data")}
                command = [sys.executable, "-m", "monitor", "run", "--config", str(config)]
                with open(home / "daemon.log", "ab") as log:
                    procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
            for sock, proc in zip(socks, procs, strict=True):
                wait_ready(sock, proc, 300)
            engine = sa.create_engine(url)
            cold = warm_up(engine, farm, procs, args)
            samplers = [Sampler(proc.pid, 1.0) for proc in procs]
            for sampler in samplers:
                sampler.start()
            load = [os.getloadavg()[0]]  # the machine's 1-minute load average: other jobs share the cores
            before_x, before_req = xacts(engine, name), sum(farm.requests)
            before_feed = list(farm.requests)
            rng = random.Random(1)
            added: dict[str, float] = {}
            added_wall: dict[str, float] = {}  # the outbox's times are wall-clock
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < args.seconds:
                guid, title, text = matching_item(n, rng)
                farm.add(rng.randrange(args.feeds), guid, title, text)
                added[guid], added_wall[guid] = time.monotonic(), time.time()
                n += 1
                time.sleep(max(0.0, start + n / args.rate - time.monotonic()))
            window = time.monotonic() - start
            load.append(os.getloadavg()[0])
            after_x, after_req = xacts(engine, name), sum(farm.requests)
            per_feed = [a - b for a, b in zip(farm.requests, before_feed, strict=True)]
            for sampler in samplers:
                sampler.stopped.set()
            deadline = time.monotonic() + 2 * args.interval + 30  # the last items' polls and deliveries

            def delivered() -> dict[str, float]:
                # the first sendMessage or story edit that carries each item (an item can join another's story)
                seen: dict[str, float] = {}
                for call in stub.calls():
                    if call.method not in ("sendMessage", "editMessageText") or call.status != 200:
                        continue
                    for guid in re.findall(r"bench-\d+", str(call.params.get("text"))):
                        if guid in added and guid not in seen:
                            seen[guid] = call.at
                return seen

            while True:
                seen = delivered()
                fate, joined, sizes = account(engine, added_wall, seen)
                if len(seen) + len(joined) == len(added) or time.monotonic() > deadline:
                    break
                time.sleep(2)
            with engine.connect() as conn:
                holders = dict(conn.exec_driver_sql(
                    "SELECT name, holder FROM leases WHERE name LIKE 'poll:%%' AND expires >= now()"
                ).all())  # fmt: skip
                pids = {str(h): int(p) for h, p in conn.exec_driver_sql("SELECT id, pid FROM replicas").all()}
            engine.dispose()
            latencies = [seen[g] - added[g] for g in added if g in seen] + list(joined.values())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for sock in socks:
            sock.close()
        farm.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    by_pid = {pid: holder for holder, pid in pids.items()}
    # a feed's lease is named after its poll job: map it back to the farm's index
    index = {poll_job_id(Feed(name=f"f{i}", url=farm.url(i))): i for i in range(args.feeds)}
    replicas = []
    for proc, sampler in zip(procs, samplers, strict=True):
        holder = by_pid.get(proc.pid)
        polls = sum(per_feed[index[job]] for job, h in holders.items() if h == holder and job in index)
        cpu = statistics.mean(s.cpu for s in sampler.samples) if sampler.samples else float("nan")
        rss = sampler.samples[-1].rss_mb if sampler.samples else float("nan")
        replicas.append({"pid": proc.pid, "feeds": sum(h == holder for h in holders.values()),
                         "polls_per_s": polls / window, "cpu_pct": cpu, "rss_mb": rss})  # fmt: skip
    return {
        "replicas": count, "window_s": window, "polls_per_s": (after_req - before_req) / window,
        "xacts_per_s": (after_x - before_x) / window, "items": len(added), "delivered": len(latencies),
        "latency_median": statistics.median(latencies) if latencies else float("nan"),
        "latency_p95": pct(latencies, 0.95), "latency_p99": pct(latencies, 0.99), "per_replica": replicas,
        "cold_cycle_s": cold, "fate": fate, "stories": sorted(sizes.values(), reverse=True), "load_avg": load,
        "cpu_total": sum(r["cpu_pct"] for r in replicas),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="a PostgreSQL URL; each run gets a database of its own")
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--interval", type=int, default=60, help="seconds between polls of a feed")
    parser.add_argument("--lease", type=int, default=30)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument(
        "--warmup", type=float, default=1800.0, help="at most this many seconds for the cold cycle (then give up)"
    )
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after the cold cycle, before the window")
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured window")
    parser.add_argument("--rate", type=float, default=2.0, help="new matching items per second in the window")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    args = parser.parse_args()
    results = []
    with contextlib.ExitStack() as stack:
        tmp = tempfile.mkdtemp(prefix="replicas-")
        if args.keep:
            print(f"keeping {tmp} (configs, the replicas' logs)", flush=True)
        else:
            stack.callback(shutil.rmtree, tmp, True)
        for count in args.replicas:
            result = run(count, args, Path(tmp))
            results.append(result)
            print(
                f"{count} replica(s): cold cycle {result['cold_cycle_s']:.0f}s; "
                f"{result['polls_per_s']:.1f} polls/s in total, "
                f"{result['xacts_per_s']:.0f} transactions/s, latency median {result['latency_median']:.1f}s "
                f"p95 {result['latency_p95']:.1f}s p99 {result['latency_p99']:.1f}s "
                f"({result['delivered']}/{result['items']} items delivered); load average "
                f"{result['load_avg'][0]:.1f} at the window's start, {result['load_avg'][1]:.1f} at its end",
                flush=True,
            )
            for why, count_ in sorted(result["fate"].items(), key=lambda kv: -kv[1]):
                print(f"    items {why}: {count_}", flush=True)
            merged = [n for n in result["stories"] if n > 1]
            print(
                f"    {result['items']} items in {len(result['stories'])} stories, {len(merged)} of them with "
                f"several (sizes {merged[:10]}{' …' if len(merged) > 10 else ''})",
                flush=True,
            )
            for r in result["per_replica"]:
                print(
                    f"    pid {r['pid']}: {r['feeds']} feeds, {r['polls_per_s']:.1f} polls/s, "
                    f"CPU {r['cpu_pct']:.0f} % of a core, RSS {r['rss_mb']:.0f} MB",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
