"""Health: which feeds are dead or back, and the `monitor status` report.

The decisions are pure functions of FeedState and numbers. `DeadFeedWatch.check` is the daemon's health
job around them (read the states, decide, store the flag, return the notices); `format_status` gathers
the numbers of `monitor status` through the Store port and renders them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

from ..config import Config, Settings
from ..models import FeedState, Replica
from ..ports import Store

DAY = 86400.0
# A feed that still answers but has published nothing for this many of its usual gaps is reported silent.
SILENT_FACTOR = 10.0
# ...and only when that rate is known from at least this many stored items.
MIN_ITEMS_FOR_RATE = 5


@dataclass(frozen=True)
class Transition:
    """A feed crossing the dead/alive line; `reason` is a sentence for the admin channel."""

    feed: str
    kind: Literal["dead", "recovered"]
    reason: str


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / DAY:.1f}d"


def dead_reason(
    state: FeedState,
    now: datetime,
    dead_after: float,
    *,
    since: datetime,
    usual_gap: float | None = None,
    silent_factor: float = SILENT_FACTOR,
) -> str | None:
    """Why a feed is dead now, or None when it is alive.

    Failing: the last poll was an error and there has been no success for `dead_after` seconds (counted
    from `since`, e.g. the daemon's start, for a feed that never succeeded). Silent: polls succeed but no
    new item for `silent_factor` times the feed's usual gap between items, and at least `dead_after`.
    """
    if state.status == "error":
        ok_at = state.last_success or since
        failing = (now - ok_at).total_seconds()
        if failing >= dead_after:
            last = f": {state.last_error}" if state.last_error else ""
            return f"failing for {_ago(failing)} ({state.error_count} errors in a row){last}"
        return None
    if usual_gap and state.last_new_item is not None and state.status in ("ok", "not_modified"):
        silent = (now - state.last_new_item).total_seconds()
        if silent >= max(silent_factor * usual_gap, dead_after):
            return f"no new items for {_ago(silent)} (usually one every {_ago(usual_gap)})"
    return None


def dead_feed_transitions(
    states: Sequence[FeedState],
    now: datetime,
    dead_after: float,
    *,
    since: datetime,
    usual_gaps: Mapping[str, float] | None = None,
    silent_factor: float = SILENT_FACTOR,
) -> list[Transition]:
    """Feeds to report: newly dead ones (not yet `dead_reported`), and reported ones that recovered."""
    out: list[Transition] = []
    gaps = usual_gaps or {}
    for state in states:
        reason = dead_reason(
            state, now, dead_after, since=since, usual_gap=gaps.get(state.name), silent_factor=silent_factor
        )
        if reason is not None and not state.dead_reported:
            out.append(Transition(state.name, "dead", reason))
        elif reason is None and state.dead_reported and state.status in ("ok", "not_modified"):
            out.append(Transition(state.name, "recovered", "polls succeed again"))
    return out


def usual_gap(items_stored: int, window: float) -> float | None:
    """The mean seconds between items of a feed with `items_stored` items kept over a `window` (retention).

    An underestimate of the rate for feeds younger than the window, which only makes the silence test
    slower to fire; None when there are too few items to say.
    """
    if items_stored < MIN_ITEMS_FOR_RATE or window <= 0:
        return None
    return window / items_stored


def notice(transition: Transition, url: str | None = None) -> str:
    """The admin channel message for one transition."""
    where = f" ({url})" if url else ""
    if transition.kind == "dead":
        return f"⚠️ feed {transition.feed}{where} looks dead: {transition.reason}"
    return f"✅ feed {transition.feed}{where} recovered: {transition.reason}"


class DeadFeedWatch:
    """The daemon's health check: feeds that died (failing or silent too long) or came back, once each way.

    It remembers the dead status it last reported per feed: a poll running at the same time writes the
    feed's state back as it read it, without the stored `dead_reported` flag, and must not cause a repeat.
    """

    def __init__(self, since: datetime) -> None:
        self.since = since  # the daemon's start: a feed that never worked counts as failing from here
        self._dead: dict[str, bool] = {}

    @property
    def dead(self) -> int:
        """How many feeds are reported dead now."""
        return sum(self._dead.values())

    def check(self, store: Store, urls: Mapping[str, str], settings: Settings, now: datetime) -> list[str]:
        """Decide for the feeds in `urls` (name -> URL), store each new flag; the admin notices to send."""
        states = [s for s in store.feeds() if s.name in urls]
        seen = [replace(s, dead_reported=self._dead.get(s.name, s.dead_reported)) for s in states]
        gaps = {}
        for state in seen:
            gap = usual_gap(store.count_items(state.name), settings.retention)
            if gap is not None:
                gaps[state.name] = gap
        notices = []
        for t in dead_feed_transitions(seen, now, settings.dead_feed_after, since=self.since, usual_gaps=gaps):
            dead = t.kind == "dead"
            self._dead[t.feed] = dead
            current = store.get_feed(t.feed)
            if current is not None and current.dead_reported != dead:
                store.put_feed(replace(current, dead_reported=dead))
            notices.append(notice(t, urls[t.feed]))
        return notices


# --- monitor status ----------------------------------------------------------------------------------


class StatusSource(Protocol):
    """What `format_status` reads: an opened App has both."""

    @property
    def config(self) -> Config: ...

    @property
    def store(self) -> Store: ...


@dataclass(frozen=True)
class FeedRow:
    name: str
    enabled: bool
    state: FeedState | None
    items_per_day: float
    dead: str | None


@dataclass(frozen=True)
class Status:
    now: datetime
    feeds: tuple[FeedRow, ...]
    topics: tuple[tuple[str, str, int], ...]  # (id, name, matches in the last 24 h)
    labels: Mapping[str, tuple[int, int]]  # topic -> (labelled relevant, labelled not relevant), all time
    outbox: Mapping[str, int]
    near_misses: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # topic -> (offered, labelled)
    replicas: tuple[Replica, ...] = ()  # several `monitor run` on one PostgreSQL database (service.leases)
    lease: float = 30.0


def gather_status(app: StatusSource, now: datetime, *, since: datetime | None = None) -> Status:
    """Read what the status report shows: feed states, items and matches in the last 24 hours, outbox."""
    config, store = app.config, app.store
    day_ago = now - timedelta(days=1)
    states = {s.name: s for s in store.feeds()}
    per_feed = store.item_counts(day_ago)
    rows = []
    for feed in config.feeds:
        state = states.get(feed.name)
        dead = None
        if state is not None:
            gap = usual_gap(store.count_items(feed.name), config.settings.retention)
            dead = dead_reason(
                state, now, config.settings.dead_feed_after, since=since or state.last_fetch or now, usual_gap=gap
            )
        rows.append(FeedRow(feed.name, feed.enabled, state, float(per_feed.get(feed.name, 0)), dead))
    matches = store.match_counts(day_ago)
    topics = tuple((t.id, t.name, matches.get(t.id, 0)) for t in config.topics)
    labels, outbox = store.label_counts(), dict(store.outbox_counts())
    replicas = tuple(store.replicas()) if getattr(store, "shared", False) else ()
    return Status(
        now, tuple(rows), topics, labels, outbox, store.near_miss_counts(), replicas, config.settings.lease
    )  # fmt: skip


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    seconds = (value - now).total_seconds()
    return f"in {_ago(seconds)}" if seconds >= 0 else f"{_ago(-seconds)} ago"


def _due(value: datetime | None, now: datetime) -> str:
    """When the next poll is: "in 5m", or "overdue 15m" when that time has passed (no daemon polled it then)."""
    if value is None:
        return "-"
    seconds = (value - now).total_seconds()
    return f"in {_ago(seconds)}" if seconds >= 0 else f"overdue {_ago(-seconds)}"


def render_status(status: Status) -> str:
    """The `monitor status` text: one table of feeds, one of topics, the outbox."""
    now = status.now
    lines = [f"status at {now:%Y-%m-%d %H:%M:%S} UTC", "", "feeds:"]
    rows = [("feed", "state", "last success", "last error", "next poll", "items/day")]
    problems = []
    for row in status.feeds:
        s = row.state
        state = "disabled" if not row.enabled else (s.status if s else "never polled")
        if row.dead:
            state = "DEAD"
            problems.append(f"  {row.name}: {row.dead}")
        elif s is not None and s.last_error and s.status == "error":
            problems.append(f"  {row.name}: {s.last_error}")
        rows.append(
            (
                row.name,
                state,
                _when(s.last_success if s else None, now),
                _when(s.last_error_at if s else None, now),
                _due(s.next_poll if s else None, now) if row.enabled else "-",
                f"{row.items_per_day:g}",
            )
        )
    lines += _table(rows)
    if problems:
        lines += ["", "feed errors:", *problems]
    lines += ["", "topics (near misses offered for a label and labelled; labels so far, relevant ✓ / not ✗; "
              "matches in the last 24 h):"]  # fmt: skip
    header = ("topic", "name", "near misses", "labels", "matches/day")
    near, labels = status.near_misses, status.labels
    topics = [(i, n, _near(near.get(i)), _labels(labels.get(i)), str(c)) for i, n, c in status.topics]
    lines += _table([header, *topics])
    if status.replicas:
        lines += ["", *render_replicas(status.replicas, status.lease)]
    box = status.outbox
    lines += [
        "",
        f"outbox: {box.get('pending', 0)} pending, {box.get('failed', 0)} failed, {box.get('sent', 0)} sent"
        + "".join(f", {box[k]} {k}" for k in sorted(box) if k not in ("pending", "failed", "sent")),
    ]
    return "\n".join(lines)


def render_replicas(replicas: Sequence[Replica], lease: float) -> list[str]:
    """The replicas sharing the database: live ones (a heartbeat within the lease) first, their leases."""
    live = sum(r.age <= lease for r in replicas)
    rows = [("replica", "state", "last heartbeat", "feeds", "duties")]
    for r in sorted(replicas, key=lambda r: (r.age > lease, r.id)):
        duties = [d for d in r.duties]
        feeds = r.leases - len(duties)
        state = "live" if r.age <= lease else "gone"
        rows.append((r.id, state, f"{_ago(r.age)} ago", str(feeds), ", ".join(duties) or "-"))
    return [f"replicas ({live} live; a dead one's leases move within settings.lease, {_ago(lease)}):", *_table(rows)]


def _labels(counts: tuple[int, int] | None) -> str:
    return f"{counts[0]} ✓ {counts[1]} ✗" if counts else "-"


def _near(counts: tuple[int, int] | None) -> str:
    return f"{counts[0]} offered, {counts[1]} labelled" if counts else "-"


def format_status(app: StatusSource, now: datetime) -> str:
    """`monitor status`: gather and render."""
    return render_status(gather_status(app, now))


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
