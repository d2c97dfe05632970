"""Several `monitor run` replicas on one PostgreSQL database: who polls which feed, who does the rest.

    every settings.lease / 3 (the `lease` job), each replica:
        heartbeat                       its row in `replicas`, by the database's clock
        renew                           every lease it holds: expires = now() + 2/3 · settings.lease
        live = replicas with a heartbeat younger than 2/3 · settings.lease
        plan_leases(pool, mine, taken, live)       pure: share = pool // live (+1 for the first pool % live)
            over its share              release the extra (not the ones polling now): the newcomers take them
            under it                    claim free leases (none, or expired), in an order of its own
    a poll job runs only while its replica holds the feed's lease (`poll:<id>`); a claimed feed is polled at
    once (or at its stored next poll), and one taken over from an expired lease has its stored, unmatched
    items matched (its holder died between storing and matching them)

Two pools are balanced that way: the feeds, and the duties (`deliver:<channel>` for each channel, `feedback`
for Telegram's getUpdates, `leader` for refit, retention, health and the near-miss message). A replica that
dies stops renewing; its leases expire 2/3 · lease after its last renewal and the others' next tick (at most
lease / 3 later) takes them: a take-over within settings.lease. A replica that cannot renew (the database is
gone) stops using its leases when they would have expired, so it never polls past its lease. A clean stop
deletes its leases and its row, and the others take its work at their next tick.

A channel is delivered by one replica at a time, not row by row by all: Telegram's rate limits (30 messages a
second per bot, 20 a minute per group), the channel pauses a 429 asks for and the order of a story's messages
hold only where one sender knows all of them. Each row is still marked sent in its own transaction, so a
take-over resends at most the one message in flight when the holder died.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 3  # ticks per settings.lease; a lease outlives RENEWALS_PER_LEASE - 1 of them
FORGET_AFTER = 3600.0  # seconds: a replica row (and lease) silent this long is deleted


class LeaseStore(Protocol):
    def heartbeat(self, replica_id: str, host: str, pid: int, forget_after: float) -> None: ...
    def renew_leases(self, holder: str, ttl: float) -> set[str]: ...
    def live_replicas(self, within: float) -> list[str]: ...
    def leases(self) -> list[tuple[str, str, float]]: ...
    def claim_leases(self, holder: str, names: Sequence[str], ttl: float) -> dict[str, bool]: ...
    def release_leases(self, holder: str, names: Collection[str] | None = None, *, forget: bool = False) -> int: ...


def replica_id() -> str:
    """host:pid:random, new at every start (a restarted process is a new replica)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass(frozen=True)
class LeasePlan:
    release: tuple[str, ...] = ()
    claim: tuple[str, ...] = ()  # candidates, best first; at most `want` of them are taken
    want: int = 0


def fair_share(pool: int, live: Sequence[str], me: str) -> int:
    """This replica's share of `pool` names: pool // live, one more for the first pool % live replicas in id
    order. Every replica computes the same split from the same list, and the shares add up to the pool."""
    ids = sorted(set(live) | {me})
    base, extra = divmod(pool, len(ids))
    return base + (1 if ids.index(me) < extra else 0)


def order_for(me: str, name: str) -> str:
    """A replica's own order over names: replicas claiming at once mostly want different ones."""
    return hashlib.sha1(f"{me}\n{name}".encode()).hexdigest()


def plan_leases(
    me: str, pool: Collection[str], mine: Collection[str], taken: Collection[str], live: Sequence[str],
    busy: Collection[str] = (),
) -> LeasePlan:  # fmt: skip
    """What to release and claim so that every live replica holds its fair share of `pool`.

    `live`: the live replicas' ids; `mine`: this replica's leases; `taken`: every unexpired lease (anyone's, mine
    included); `busy`: names this replica is working on now, kept even over its share (released at a later tick)."""
    pool_set = set(pool)
    held = [name for name in mine if name in pool_set]
    gone = tuple(sorted(name for name in mine if name not in pool_set))
    share = fair_share(len(pool_set), live, me)
    if len(held) > share:
        idle = sorted((name for name in held if name not in busy), key=lambda name: order_for(me, name))
        return LeasePlan(release=gone + tuple(idle[: len(held) - share]))
    free = sorted((name for name in pool_set if name not in taken), key=lambda name: order_for(me, name))
    return LeasePlan(release=gone, claim=tuple(free), want=share - len(held))


@dataclass
class LeaseChange:
    gained: dict[str, bool] = field(default_factory=dict)  # name -> taken over from an expired lease
    lost: set[str] = field(default_factory=set)


class Leases:
    """This replica's leases; `tick()` from the daemon's lease job, `holds()` from any thread."""

    def __init__(
        self,
        store: LeaseStore,
        lease: float,
        *,
        me: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.me = me or replica_id()
        self.lease = lease
        self._monotonic = monotonic
        self._held: frozenset[str] = frozenset()
        self._valid_until = 0.0
        self.live = 1

    @property
    def every(self) -> float:
        """Seconds between ticks."""
        return self.lease / RENEWALS_PER_LEASE

    @property
    def ttl(self) -> float:
        """How long a renewed lease lasts: two ticks may be missed before the others take it."""
        return self.lease * (RENEWALS_PER_LEASE - 1) / RENEWALS_PER_LEASE

    def holds(self, name: str) -> bool:
        return name in self._held and self._monotonic() < self._valid_until

    def held(self) -> frozenset[str]:
        return self._held if self._monotonic() < self._valid_until else frozenset()

    def remaining(self) -> float:
        """Seconds the leases held now last unless renewed (0 once they ran out)."""
        return max(0.0, self._valid_until - self._monotonic())

    def tick(self, pools: Sequence[Collection[str]], busy: Collection[str] = ()) -> LeaseChange:
        """Heartbeat, renew, rebalance each pool; StoreError when the database fails (leases run out then)."""
        started = self._monotonic()
        self.store.heartbeat(self.me, socket.gethostname(), os.getpid(), max(FORGET_AFTER, 10 * self.lease))
        renewed = self.store.renew_leases(self.me, self.ttl)
        expired = set(self._held) - renewed
        if expired:
            log.warning("leases: %d lost to expiry (this replica missed its renewals)", len(expired))
        change = LeaseChange(lost=expired)
        held = set(renewed)
        self._set(held, started)
        live = self.store.live_replicas(self.ttl)
        self.live = len(set(live) | {self.me})
        taken = {name for name, _, _ in self.store.leases()}
        for pool in pools:
            plan = plan_leases(self.me, pool, held & set(pool), taken, live, busy)
            if plan.release:
                self.store.release_leases(self.me, plan.release)
                held -= set(plan.release)
                change.lost |= set(plan.release)
            if plan.want > 0 and plan.claim:
                won = self.store.claim_leases(self.me, plan.claim[: plan.want], self.ttl)
                held |= set(won)
                change.gained.update(won)
            self._set(held, started)
        return change

    def stop(self) -> None:
        """A clean stop: give every lease back, and the replica row, so the others take over at their next tick."""
        self._held = frozenset()
        self.store.release_leases(self.me, None, forget=True)

    def _set(self, held: set[str], renewed_at: float) -> None:
        self._held = frozenset(held)
        self._valid_until = renewed_at + self.ttl
