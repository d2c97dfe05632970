"""Leases between replicas (service/leases.py): the pure split, and the store's queries on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.models import Replica, Story
from monitor.service.health import render_replicas
from monitor.service.leases import Leases, fair_share, plan_leases
from tests.storefixtures import T0, Db, db_fixture, item  # noqa: F401

POOL = [f"poll:{n:02d}" for n in range(10)]


@pytest.mark.parametrize("pool", [0, 1, 10, 11, 5000])
@pytest.mark.parametrize("live", [1, 2, 3, 7])
def test_shares_add_up_to_the_pool_and_differ_by_one_at_most(pool: int, live: int) -> None:
    ids = [f"r{n}" for n in range(live)]
    shares = [fair_share(pool, ids, me) for me in ids]
    assert sum(shares) == pool
    assert max(shares) - min(shares) <= 1


def test_over_its_share_a_replica_releases_idle_leases_and_keeps_busy_ones() -> None:
    mine = POOL[:6]
    plan = plan_leases("a", POOL, mine, taken=POOL, live=["a", "b", "c"], busy=POOL[:3])
    assert len(plan.release) == 2 and not set(plan.release) & set(POOL[:3])
    assert plan.want == 0


def test_under_its_share_a_replica_claims_free_leases_and_drops_gone_ones() -> None:
    plan = plan_leases("a", POOL, ["poll:gone", "poll:00"], taken=["poll:00", "poll:01"], live=["a", "b"])
    assert plan.release == ("poll:gone",)
    assert plan.want == 4 and set(plan.claim) == set(POOL) - {"poll:00", "poll:01"}
    # two replicas wanting at once start from different names
    other = plan_leases("b", POOL, [], taken=["poll:00", "poll:01"], live=["a", "b"])
    assert other.claim[:2] != plan.claim[:2]


def test_the_replicas_view_shows_live_ones_their_feeds_and_duties() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    text = "\n".join(
        render_replicas(
            [
                Replica("vm:1:aa", "vm", 1, now, now, 1.5, 5, ("deliver:tg", "leader")),
                Replica("vm:2:bb", "vm", 2, now, now, 400.0, 0),
            ],
            30.0,
        )
    )
    assert "1 live" in text and "vm:1:aa" in text and "deliver:tg, leader" in text
    assert "gone" in text.splitlines()[-1]


@pytest.mark.postgres
def test_leases_on_postgresql_are_held_by_one_replica_and_taken_over_after_expiry(db: Db) -> None:
    if db.kind != "postgresql":
        pytest.skip("leases coordinate replicas on PostgreSQL only")
    a, b = db.open(), db.open()
    assert a.claim_leases("a", POOL[:4], ttl=30) == {name: False for name in POOL[:4]}
    assert b.claim_leases("b", POOL[:6], ttl=30) == {name: False for name in POOL[4:6]}  # not a's
    assert a.renew_leases("a", ttl=30) == set(POOL[:4])
    assert a.release_leases("a", POOL[:1]) == 1
    assert b.claim_leases("b", POOL[:1], ttl=-1) == {POOL[0]: False}  # free again; taken, already expired
    assert a.claim_leases("a", POOL[:1], ttl=30) == {POOL[0]: True}  # an expired lease: taken over
    assert b.renew_leases("b", ttl=30) == set(POOL[4:6])  # the expired one is not renewed
    assert {name for name, holder, _ in a.leases() if holder == "a"} == set(POOL[:4])


@pytest.mark.postgres
def test_a_replica_splits_the_pool_with_the_live_ones(db: Db) -> None:
    if db.kind != "postgresql":
        pytest.skip("leases coordinate replicas on PostgreSQL only")
    a, b = Leases(db.open(), 30.0, me="a"), Leases(db.open(), 30.0, me="b")
    assert len(a.tick([POOL]).gained) == 10  # alone: everything
    b.tick([POOL])  # two live now: b claims what is free (nothing yet)
    change = a.tick([POOL])
    assert len(change.lost) == 5 and len(a.held()) == 5  # a gives half back
    assert len(b.tick([POOL]).gained) == 5
    assert a.held() | b.held() == set(POOL) and not a.held() & b.held()
    a.stop()
    assert len(b.tick([POOL]).gained) == 5  # a's clean stop: its leases are free at once
    assert [r.id for r in b.store.replicas()] == ["b"]  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_the_story_lock_hands_over_what_other_replicas_grouped(db: Db) -> None:
    if db.kind != "postgresql":
        pytest.skip("the story log is kept on PostgreSQL only")
    a, b = db.open(), db.open()
    first, second = item("one"), item("two", feed="tass")
    a.add_items([first, second], T0)
    with a.story_lock() as others:
        assert others == []
        a.put_story(Story("s1", first.uid, T0, T0, items=(first.uid,), sources=(first.feed,)))
    with b.story_lock(known=lambda uid: uid == second.uid) as others:
        assert [(i.uid, story) for i, story in others] == [(first.uid, "s1")]
        b.put_story(Story("s2", second.uid, T0, T0 + timedelta(minutes=1), items=(second.uid,), sources=("tass",)))
    with a.story_lock() as others:
        assert [(i.uid, story) for i, story in others] == [(first.uid, "s1"), (second.uid, "s2")]
    with a.story_lock() as others:
        assert others == []  # each membership once


@pytest.mark.postgres
def test_the_leaders_model_is_stored_with_a_revision_the_others_compare(db: Db) -> None:
    if db.kind != "postgresql":
        pytest.skip("the model is shared through the database on PostgreSQL only")
    leader, other = db.open(), db.open()
    assert other.model_revision("topic_model.npz") is None
    assert leader.save_model_bytes("topic_model.npz", b"first") == 1
    assert leader.save_model_bytes("topic_model.npz", b"refit") == 2
    assert other.model_revision("topic_model.npz") == 2
    assert other.load_model_bytes("topic_model.npz") == (2, b"refit")
