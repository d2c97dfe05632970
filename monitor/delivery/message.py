"""What an alert says: pure rendering of Alerts into Telegram HTML, email HTML and plain text. No I/O.

One alert, as Telegram shows it (email and console carry the same parts)::

    <b><a href="https://…">Title</a></b>
    <i>Source</i> · 25.11.2026 14:05 MSK
    🏷 Стратегическая стабильность 0.82 · Иран 0.41
    …snippet with the <b>matching terms</b> highlighted…
    <i>why: стратегическ* стабильност*, ДСНВ</i>
    also: TASS, RIA (+2)

The "also" line comes last so that a story update (editMessageText) changes only the tail of the
message; relevance buttons go in `reply_markup`, outside the text, so they need no room here.

Everything that comes from a feed is untrusted: it is cleaned (`untrusted.py`), escaped and bounded in length,
and only http(s) links become `<a href>`; the lines are serialised and split into messages by `markup.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo

from ..models import Alert, Match
from .highlight import SNIPPET_SCAN, highlight_spans, snippet
from .markup import BOLD, ITALIC, TELEGRAM_LIMIT, Line, Run, Tag, render_line, split_html
from .untrusted import clean, one_line, safe_link, shorten

TITLE_MAX = 400
WHY_MAX = 300
DIGEST_TITLE_MAX = 200
ALSO_SHOWN = 2  # "also: TASS, RIA (+2)"
WHY_SHOWN = 8  # reasons on the why-line: enough to judge, short enough to read


# --- the parts of an alert ------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """What one matched topic shows: its best passage, highlighted, and its own why-line."""

    topic: str  # display name, "‼ " before it for a priority: high topic
    snippet: str  # "" when the passage is the one the section before shows
    spans: tuple[tuple[int, int], ...]
    why: str


@dataclass(frozen=True)
class Parts:
    """An alert's content, cleaned and bounded, before any markup."""

    title: str
    link: str | None
    source: str
    when: str
    topics: tuple[tuple[str, float], ...]  # (display name, score), best first
    snippet: str  # the best topic's passage (sections[0])
    spans: tuple[tuple[int, int], ...]
    why: str  # the best topic's why-line
    also: tuple[tuple[str, str | None], ...]  # shown sources, link or None
    also_more: int
    sections: tuple[Section, ...] = ()  # one per matched topic, best first
    gained: tuple[str, ...] = ()  # topics the story gained after this alert was sent, told by an edit (issue 14 §2)
    continues: str = ""  # the title of the story's earlier alert, when this alert continues it


def matched(alert: Alert) -> list[Match]:
    """The alert's matching topics, best first (all of them if none is flagged matched)."""
    hits = [m for m in alert.matches if m.matched] or list(alert.matches)
    return sorted(hits, key=lambda m: m.score, reverse=True)


def why_terms(matches: Iterable[Match], limit: int = WHY_SHOWN) -> list[str]:
    """The reasons, best topic first: the keyword phrases the analyst wrote that the item contains, then
    the top contributing terms those phrases don't already say ("стратегический" after "стратегическая
    стабильность"), each once: ["ДСНВ", "стратегическая стабильность", "вооружение"]."""
    seen: dict[str, str] = {}
    for match in matches:
        hits = [one_line(hit) for hit in match.keyword_hits]
        said = {word.lower()[:5] for hit in hits for word in hit.split()}
        terms = [one_line(term) for term in match.terms if one_line(term).lower()[:5] not in said]
        for phrase in (*hits, *terms):
            if phrase and phrase.lower() not in seen:
                seen[phrase.lower()] = phrase
    return list(seen.values())[:limit]


# Words that name no event and no subject, whatever the topic: a why-line made of them tells the analyst nothing
# (issue 14: "сообщить", "россия", "глава", "сторона"). Compared by their first five letters, as stems are.
_GENERIC = frozenset(
    w[:5]
    for w in (
        *("сообщить", "заявить", "отметить", "сказать", "рассказать", "говорить", "глава", "сторона", "россия"),
        *("российский", "страна", "год", "время", "новость", "данные", "вопрос", "ситуация"),
        *("said", "says", "told", "report", "year", "news", "official", "statement", "country"),
    )
)


def _generic(term: str) -> bool:
    return term.rstrip("*").lower()[:5] in _GENERIC


def topic_why(match: Match, text: str, limit: int = WHY_SHOWN) -> list[str]:
    """One topic's reasons in words the analyst typed or would type: its keyword phrases as written in the
    config, then its distinctive terms as the words the text has ("defence", not the stem "defenc"), never
    generic words; terms the text does not show are left out (a stem alone would say less than nothing)."""
    seen: dict[str, str] = {}
    hits = [one_line(hit) for hit in match.keyword_hits]
    said = {word.lower()[:5] for hit in hits for word in hit.split()}
    for hit in hits:
        if hit and hit.lower() not in seen:
            seen[hit.lower()] = hit
    for term in match.terms:
        term = one_line(term)
        if not term or _generic(term) or term.lower()[:5] in said:
            continue
        spans = highlight_spans(text, [term])
        if not spans:
            continue
        word = text[spans[0][0] : spans[0][1]]
        if word.lower() not in seen and not _generic(word):
            seen[word.lower()] = word
    return list(seen.values())[:limit]


def also_sources(
    also: Sequence[tuple[str, str | None]], shown: int = ALSO_SHOWN
) -> tuple[tuple[tuple[str, str | None], ...], int]:
    """The first `shown` distinct sources with a safe link, and how many more there are."""
    unique: dict[str, str | None] = {}
    for source, link in also:
        name = shorten(one_line(source), 60)
        if name and name not in unique:
            unique[name] = safe_link(link)
    items = list(unique.items())
    return tuple(items[:shown]), max(0, len(items) - shown)


def also_names(alert: Alert) -> str:
    """ "TASS, RIA (+2)": the story's other sources as plain text, "" when it has none."""
    shown, more = also_sources(alert.also)
    return ", ".join(name for name, _ in shown) + (f" (+{more})" if more else "") if shown else ""


def local_time(alert: Alert, tz: tzinfo, fmt: str = "%d.%m.%Y %H:%M %Z") -> str:
    return alert.item.published.astimezone(tz).strftime(fmt)


HIGH_MARK = "‼ "  # before the name of a `priority: high` topic


def parts(alert: Alert, *, topics: Mapping[str, str], tz: tzinfo, high: Collection[str] = ()) -> Parts:
    """Everything an alert shows, from an Alert; `topics` maps topic id to display name, `high` holds the ids of
    `priority: high` topics (marked). Each matched topic gets its own passage and why-line (issue 14); the topics
    its story gained later show as "+ Topic" (the edit that tells them), and a later alert of a story names the
    first one's title ("continues").
    """
    item = alert.item
    best = matched(alert)
    whole = one_line(f"{item.title}\n{(item.text or '')[:SNIPPET_SCAN]}")
    sections: list[Section] = []
    shown_passages: set[str] = set()
    for m in best:
        reasons = topic_why(m, whole)
        source_text = m.passage if m.passage.strip() else item.text or item.title
        text, spans = snippet(source_text, reasons)
        if text in shown_passages:  # two topics, one passage: shown once, each keeps its why-line
            text, spans = "", []
        shown_passages.add(text)
        name = one_line(topics.get(m.topic, m.topic))
        sections.append(Section((HIGH_MARK if m.topic in high else "") + name, text, tuple(spans),
                                shorten(", ".join(reasons), WHY_MAX)))  # fmt: skip
    shown, more = also_sources(alert.also)
    if not sections:  # no topic: the opening of the text
        lead, lead_spans = snippet(item.text or item.title, [])
        sections.append(Section("", lead, tuple(lead_spans), ""))
    first = sections[0]
    gain = alert.gained
    return Parts(
        title=shorten(one_line(item.title), TITLE_MAX) or "(untitled)",
        link=safe_link(item.link),
        source=shorten(one_line(item.feed), 80),
        when=local_time(alert, tz),
        topics=tuple(
            ((HIGH_MARK if m.topic in high else "") + one_line(topics.get(m.topic, m.topic)), m.score) for m in best
        ),
        snippet=first.snippet,
        spans=tuple(first.spans),
        why=first.why,
        also=shown,
        also_more=more,
        sections=tuple(sections),
        gained=tuple((HIGH_MARK if t in high else "") + one_line(topics.get(t, t)) for t in dict.fromkeys(gain)),
        continues=shorten(one_line(alert.continues), DIGEST_TITLE_MAX),
    )


# --- styled lines ---------------------------------------------------------------------------------


def _lines(p: Parts) -> list[Line]:
    title_tags: tuple[Tag, ...] = (BOLD, ("a", p.link)) if p.link else (BOLD,)
    lines: list[Line] = [
        (Run(p.title, title_tags),),
        (Run(p.source, (ITALIC,)), Run(f" · {p.when}")),
    ]
    if p.continues:
        lines.append((Run(f"↪ continues a story already sent: {p.continues}", (ITALIC,)),))
    if p.topics:
        lines.append((Run("🏷 " + " · ".join(f"{name} {score:.2f}" for name, score in p.topics)),))
    several = len(p.sections) > 1
    for section in p.sections:
        if section.snippet:
            runs: list[Run] = [Run(f"{section.topic}: ", (BOLD,))] if several else []
            pos = 0
            for start, end in section.spans:
                runs += [Run(section.snippet[pos:start]), Run(section.snippet[start:end], (BOLD,))]
                pos = end
            runs.append(Run(section.snippet[pos:]))
            lines.append(tuple(r for r in runs if r.text))
        if section.why:
            label = f"why ({section.topic}): " if several and not section.snippet else "why: "
            lines.append((Run(f"{label}{section.why}", (ITALIC,)),))
    if p.gained:  # near the tail: an edit that adds it changes the end of the message
        lines.append((Run("+ " + ", ".join(p.gained), (BOLD,)),))
    also = also_line(p.also, p.also_more)
    if also:
        lines.append(also)
    return lines


def also_line(shown: Sequence[tuple[str, str | None]], more: int) -> Line:
    """("also: ", TASS, ", ", RIA, " (+2)") with sources linked where they have a safe link."""
    if not shown:
        return ()
    runs = [Run("also: ")]
    for i, (name, link) in enumerate(shown):
        if i:
            runs.append(Run(", "))
        runs.append(Run(name, (("a", link),) if link else ()))
    if more:
        runs.append(Run(f" (+{more})"))
    return tuple(runs)


# --- one alert ------------------------------------------------------------------------------------


def render_telegram(
    alert: Alert,
    *,
    topics: Mapping[str, str],
    tz: tzinfo,
    limit: int = TELEGRAM_LIMIT,
    high: Collection[str] = (),
) -> list[str]:
    """Telegram HTML (parse_mode=HTML) for one alert, as chunks of at most `limit` units."""
    p = parts(alert, topics=topics, tz=tz, high=high)
    return split_html(_lines(p), limit)


def render_telegram_text(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Plain text (admin notices, notify-test) as escaped Telegram HTML chunks."""
    return split_html([(Run(line),) for line in clean(text).split("\n")], limit)


def label_hint(alert: Alert) -> str:
    """The alert's id and how to label it from a shell: console and email show it (Telegram has buttons)."""
    best = matched(alert)
    return f"alert #{alert.id} · to label it: monitor label {alert.id} {best[0].topic if best else 'TOPIC'} yes|no"


def render_html(alert: Alert, *, topics: Mapping[str, str], tz: tzinfo, high: Collection[str] = ()) -> str:
    """An HTML email body for one alert."""
    lines = _lines(parts(alert, topics=topics, tz=tz, high=high))
    return _html_document([[*lines, (Run(label_hint(alert), (ITALIC,)),)]])


def render_text(alert: Alert, *, topics: Mapping[str, str], tz: tzinfo, high: Collection[str] = ()) -> str:
    """A plain-text block for one alert (console, email text part); highlights as *term*."""
    p = parts(alert, topics=topics, tz=tz, high=high)
    out = [p.title]
    if p.link:
        out.append(p.link)
    out.append(f"{p.source} · {p.when}")
    if p.continues:
        out.append(f"↪ continues a story already sent: {p.continues}")
    if p.topics:
        out.append("topics: " + " · ".join(f"{name} {score:.2f}" for name, score in p.topics))
    several = len(p.sections) > 1
    for section in p.sections:
        if section.snippet:
            marked, pos = (f"{section.topic}: " if several else ""), 0
            for start, end in section.spans:
                marked += section.snippet[pos:start] + "*" + section.snippet[start:end] + "*"
                pos = end
            out.append(marked + section.snippet[pos:])
        if section.why:
            out.append((f"why ({section.topic}): " if several and not section.snippet else "why: ") + section.why)
    if p.gained:
        out.append("+ " + ", ".join(p.gained))
    if p.also:
        shown = ", ".join(f"{name} <{link}>" if link else name for name, link in p.also)
        out.append(f"also: {shown}" + (f" (+{p.also_more})" if p.also_more else ""))
    out.append(label_hint(alert))
    return "\n".join(out)


def render_update_text(alert: Alert, *, topics: Mapping[str, str]) -> str:
    """One short line for a story update where the sent block cannot change (the console): the alert's title and
    what the story has now ("↺ Title — also: TASS, RIA (+2)", "+ Topic" for a topic it gained)."""
    gained = [one_line(topics.get(t, t)) for t in dict.fromkeys(alert.gained)]
    names = also_names(alert)
    tail = []
    if gained:
        tail.append("+ " + ", ".join(gained))
    if names:
        tail.append(f"also: {names}")
    title = shorten(one_line(alert.item.title), TITLE_MAX) or "(untitled)"
    return f"↺ {title} — " + "; ".join(tail or ["updated"]) + f" (alert #{alert.id})"


def render_subject(alert: Alert, *, topics: Mapping[str, str], limit: int = 160) -> str:
    """An email subject on one line: "[Topic, Topic] Title"; feed text can never add a header line."""
    names = ", ".join(one_line(topics.get(m.topic, m.topic)) for m in matched(alert))
    return shorten(one_line(f"[{names}] {alert.item.title}" if names else alert.item.title), limit)


# --- digests --------------------------------------------------------------------------------------


def group_by_topic(alerts: Sequence[Alert], topics: Mapping[str, str]) -> list[tuple[str, list[Alert]]]:
    """Alerts grouped under their best topic, topics in config order; (display name, alerts) pairs."""
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        best = matched(alert)
        groups.setdefault(best[0].topic if best else "", []).append(alert)
    order = {topic: i for i, topic in enumerate(topics)}
    ranked = sorted(groups.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    return [(one_line(topics.get(topic, topic)) or "other", items) for topic, items in ranked]


def _digest_lines(alerts: Sequence[Alert], title: str, topics: Mapping[str, str], tz: tzinfo) -> list[list[Line]]:
    sections: list[list[Line]] = [[(Run(one_line(title), (BOLD,)),)]]
    for name, items in group_by_topic(alerts, topics):
        section: list[Line] = [(Run(f"{name} ({len(items)})", (BOLD,)),)]
        for alert in items:
            link = safe_link(alert.item.link)
            head = shorten(one_line(alert.item.title), DIGEST_TITLE_MAX) or "(untitled)"
            section.append(
                (
                    Run("• "),
                    Run(head, (("a", link),) if link else ()),
                    Run(
                        f" — {shorten(one_line(alert.item.feed), 80)}, {local_time(alert, tz, '%d.%m %H:%M')}"
                        f"{_also_tail(alert)} · #{alert.id}"
                    ),
                )
            )
        sections.append(section)
    return sections


def _also_tail(alert: Alert) -> str:
    """ ", also TASS, RIA (+2)": the story's other sources, for a digest line (issue 14 §3)."""
    names = also_names(alert)
    return f", also {names}" if names else ""


def render_digest_telegram(
    alerts: Sequence[Alert], title: str, *, topics: Mapping[str, str], tz: tzinfo, limit: int = TELEGRAM_LIMIT
) -> list[str]:
    """One digest as Telegram HTML chunks, grouped by topic, split between lines when long."""
    lines: list[Line] = []
    for section in _digest_lines(alerts, title, topics, tz):
        lines.extend([*section, (Run(""),)])
    return split_html(lines[:-1], limit)


def render_digest_text(alerts: Sequence[Alert], title: str, *, topics: Mapping[str, str], tz: tzinfo) -> str:
    """One digest as plain text."""
    blocks = []
    for section in _digest_lines(alerts, title, topics, tz):
        lines = []
        for line in section:
            text = "".join(r.text for r in line)
            links = [href for r in line for name, href in r.tags if name == "a" and href]
            lines.append(text + "".join(f"\n  {href}" for href in links))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_digest_html(alerts: Sequence[Alert], title: str, *, topics: Mapping[str, str], tz: tzinfo) -> str:
    """One digest as an HTML email body."""
    return _html_document(_digest_lines(alerts, title, topics, tz))


def render_digest_subject(alerts: Sequence[Alert], title: str) -> str:
    return shorten(one_line(title), 160)


def _html_document(sections: Sequence[Sequence[Line]]) -> str:
    body = "\n".join("<p>" + "<br>\n".join(render_line(line) for line in section) + "</p>" for section in sections)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        f'<body style="font-family: sans-serif">\n{body}\n</body></html>\n'
    )
