"""Session 7's candidate evidence for the same-event decision, each against the shipped rule on the same folds.

    python3 bench/story_retold.py [--seeds 20] [--boot 1000] [--only NAME ...]

Measured, not shipped (docs/stories.md, "Session 7"):
- **title words retold**: the share of one title's content words that the other item's title or first 1,000
  characters use, each word matched by its first 5 letters (or whole when shorter: inflection-proof, and
  lemma-proof where pymorphy3 maps a surname to a common noun, "Песков" → "песок"); the lower of the two sides.
  Its package implementation (commit 8f4487d of branch s7-pairs) gave the same figures and cost 14-17 % of grouping
  time, which is why it is not shipped;
- character 4-gram cosine of the titles; names matched by a shared 5-letter prefix rather than by lemma;
- the numbers' role: a title number the other item repeats, a number in one title only, a conflicting number of
  the same unit ("5 человек" / "7 человек") and an agreeing one;
- the decision threshold chosen by an inner cross-validation of the training folds instead of logit 0.

Cross-validated exactly as `story_pairs.py --cv --seeds N` (`story_variants.cv_runs`), with the same paired
bootstrap of the change of F1 (`story_variants.paired_bootstrap`).
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import story_pairs
import story_variants as sv

from monitor.match.text import STOP_WORDS, normalise, normalised_tokens, word_term
from monitor.models import Item
from monitor.stories import evidence as stories
from monitor.stories import features as F

_LETTERS = re.compile(r"[^\W\d_]{2,}")
_STOP = STOP_WORDS | frozenset(F._EVENTLESS_WORDS.split())


def word_keys(norm: str, k: int = 5) -> frozenset[str]:
    """Content words of a normalised text, each as its first k letters (whole when shorter)."""
    return frozenset(w[:k] for w in set(_LETTERS.findall(norm)) - _STOP)


def grams(norm: str, n: int = 4) -> Counter[str]:
    out: Counter[str] = Counter()
    for w in _LETTERS.findall(norm):
        w = f" {w} "
        out.update(w[i : i + n] for i in range(len(w) - n + 1))
    return out


def cos(a: Counter[str], b: Counter[str]) -> float:
    na = math.sqrt(sum(v * v for v in a.values())) or 1.0
    nb = math.sqrt(sum(v * v for v in b.values())) or 1.0
    return sum(a[k] * b[k] for k in a.keys() & b.keys()) / na / nb


def name_prefixes(raw: str, k: int = 5) -> set[str]:
    """The names `entities_of` reads (capitalised words not opening a sentence, acronyms), as k-letter prefixes."""
    out = set()
    for m in F._CAPITALISED.finditer(raw):
        word = m.group()
        i = m.start() - 1
        while i >= 0 and raw[i].isspace():
            i -= 1
        acronym = len(word) >= 2 and word.isupper()
        if not acronym and (i < 0 or raw[i] in F._SENTENCE_END):
            continue
        for part in normalised_tokens(normalise(word)):
            if part.isalpha() and word_term(part):
                out.add(part if acronym else part[:k])
    return out


def number_units(norm: str) -> set[tuple[str, str]]:
    """(number, the next word's term): "5 человек" → ("5", "человек"); dates left out."""
    toks = normalised_tokens(norm)
    out = set()
    for i, t in enumerate(toks[:-1]):
        nxt = toks[i + 1]
        if t.isdigit() and not nxt.isdigit() and nxt not in F._MONTHS and word_term(nxt):
            out.add((t, word_term(nxt)))
    return out


def share(part: frozenset[str] | set[str], whole: frozenset[str] | set[str]) -> float:
    return len(part & whole) / len(part) if part else 1.0


def extra_features(a: Item, b: Item) -> dict[str, float]:
    fa, fb = stories.item_features(a), stories.item_features(b)
    ta, tb = normalise(a.title), normalise(b.title)
    body_a, body_b = normalise(a.text[: F.TEXT_CHARS]), normalise(b.text[: F.TEXT_CHARS])
    out: dict[str, float] = {}
    for chars in (600, 1000, 1500):
        ka, kb = word_keys(ta), word_keys(tb)
        xa, xb = ka | word_keys(body_a[:chars]), kb | word_keys(body_b[:chars])
        out[f"retold_{chars}"] = min(share(ka, xb), share(kb, xa))
    out["char_title"] = cos(grams(ta), grams(tb))
    na = name_prefixes(a.title + " . " + a.text[: F.LEAD_CHARS])
    nb = name_prefixes(b.title + " . " + b.text[: F.LEAD_CHARS])
    wa, wb = word_keys(ta + " " + body_a) | fa.entities, word_keys(tb + " " + body_b) | fb.entities
    ca, cb = share(na, nb | wb), share(nb, na | wa)
    out["names_prefix_min"], out["names_prefix_max"] = min(ca, cb), max(ca, cb)
    na_t, nb_t = fa.title_numbers, fb.title_numbers
    out["title_number_shared"] = float(bool((na_t & fb.numbers) or (nb_t & fa.numbers)))
    out["title_number_one_side"] = float(bool(na_t) != bool(nb_t))
    ua = number_units(ta + " . " + normalise(a.text[: F.LEAD_CHARS]))
    ub = number_units(tb + " . " + normalise(b.text[: F.LEAD_CHARS]))
    units = {u for _, u in ua} & {u for _, u in ub}
    out["unit_conflict"] = float(
        any({n for n, u in ua if u == s}.isdisjoint({n for n, u in ub if u == s}) for s in units)
    )
    out["unit_agree"] = float(bool(ua & ub))
    return out


def inner_threshold(c: float = 100.0, inner: int = 5) -> sv.Learner:
    """Logistic regression, then the logit threshold (−2 .. +2 by 0.25) that maximises F1 over an inner 5-fold
    CV of the training pairs (ties: the threshold nearest 0)."""
    from sklearn.linear_model import LogisticRegression

    def learn(xs: list[list[float]], ys: list[bool]) -> Callable[[list[float]], bool]:
        order = list(range(len(xs)))
        random.Random(1).shuffle(order)
        fold = {i: k % inner for k, i in enumerate(order)}
        scores = [0.0] * len(xs)
        for k in range(inner):
            train = [i for i in range(len(xs)) if fold[i] != k]
            m = LogisticRegression(C=c, max_iter=5000).fit([xs[i] for i in train], [ys[i] for i in train])
            for i in range(len(xs)):
                if fold[i] == k:
                    scores[i] = float(m.decision_function([xs[i]])[0])
        best, best_t = -1.0, 0.0
        for t in [x / 4 for x in range(-8, 9)]:
            tp = sum(s > t and y for s, y in zip(scores, ys, strict=True))
            wrong = sum((s > t) != y for s, y in zip(scores, ys, strict=True))
            f = 2 * tp / (2 * tp + wrong) if tp else 0.0
            if f > best + 1e-9 or (abs(f - best) < 1e-9 and abs(t) < abs(best_t)):
                best, best_t = f, t
        model = LogisticRegression(C=c, max_iter=5000).fit(xs, ys)
        w = [round(float(v), 2) for v in model.coef_[0]]
        b = round(float(model.intercept_[0]), 2)
        return lambda x: b + sum(wi * xi for wi, xi in zip(w, x, strict=True)) > best_t

    return learn


SHIP = list(stories.FEATURES)
NO_TITLE_COS = [f for f in SHIP if f != "title_cosine"]
NO_NAMES = [f for f in SHIP if not f.startswith("names")]
VARIANTS: dict[str, tuple[list[str], sv.Learner]] = {
    "shipped rule (seven features)": (SHIP, sv.logistic()),
    "title words retold (1,000 chars) instead of the title cosine": ([*NO_TITLE_COS, "retold_1000"], sv.logistic()),
    "... 600 chars": ([*NO_TITLE_COS, "retold_600"], sv.logistic()),
    "... 1,500 chars": ([*NO_TITLE_COS, "retold_1500"], sv.logistic()),
    "+ title words retold (1,000 chars), title cosine kept": ([*SHIP, "retold_1000"], sv.logistic()),
    "+ character 4-gram cosine of the titles": ([*SHIP, "char_title"], sv.logistic()),
    "names by 5-letter prefix instead of lemma": ([*NO_NAMES, "names_prefix_min", "names_prefix_max"], sv.logistic()),
    "+ names by 5-letter prefix": ([*SHIP, "names_prefix_min", "names_prefix_max"], sv.logistic()),
    "+ a title number the other repeats": ([*SHIP, "title_number_shared"], sv.logistic()),
    "+ a number in one title only": ([*SHIP, "title_number_one_side"], sv.logistic()),
    "+ same unit, other number": ([*SHIP, "unit_conflict"], sv.logistic()),
    "+ same unit, other number; same number and unit": ([*SHIP, "unit_conflict", "unit_agree"], sv.logistic()),
    "threshold by inner CV": (SHIP, inner_threshold()),
    "retold + threshold by inner CV": ([*NO_TITLE_COS, "retold_1000"], inner_threshold()),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="?", type=Path, default=story_pairs.DEFAULT_PAIRS)
    parser.add_argument("--seeds", type=int, default=20, help="fold shuffles (seeds 0..N-1)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples of the pairs")
    parser.add_argument("--only", nargs="+", default=None, help="variants whose name contains one of these")
    args = parser.parse_args(argv)
    pairs = story_pairs.load_pairs(args.pairs)
    background, described = sv._background(pairs)
    rows, settled = sv.evidence_rows(pairs, background, lambda p: extra_features(p.a, p.b))
    print(f"pairs: {len(pairs)}; background IDF: {described}; {args.seeds} fold shuffles, {args.boot} resamples\n")
    sv.variants_table(pairs, rows, settled, VARIANTS, args.seeds, args.boot, args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
