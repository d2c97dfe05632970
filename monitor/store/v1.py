"""The schema as version 1 created it, frozen as literal DDL: the starting point of every migration.

Version 1 built its tables with ``metadata.create_all`` from the live definitions in schema.py, which later
versions change. Written out here (generated once from the version-1 definitions for each dialect), it stays
what databases out there really have, so a migration test can build one and upgrade it. Never edit it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, text

from .schema import UTCDateTime

SQLITE = """
CREATE TABLE schema_version (
    id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    applied DATETIME NOT NULL,
    PRIMARY KEY (id)
);
CREATE TABLE feeds (
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    last_fetch DATETIME,
    last_success DATETIME,
    next_poll DATETIME,
    status TEXT DEFAULT 'new' NOT NULL,
    error_count INTEGER DEFAULT '0' NOT NULL,
    last_error TEXT,
    last_error_at DATETIME,
    redirected_to TEXT,
    items_total INTEGER DEFAULT '0' NOT NULL,
    last_new_item DATETIME,
    dead_reported BOOLEAN DEFAULT '0' NOT NULL,
    PRIMARY KEY (name)
);
CREATE TABLE items (
    id INTEGER NOT NULL,
    feed TEXT NOT NULL,
    "key" TEXT NOT NULL,
    uid TEXT NOT NULL,
    title TEXT NOT NULL,
    link TEXT,
    published DATETIME NOT NULL,
    summary TEXT NOT NULL,
    content TEXT NOT NULL,
    author TEXT NOT NULL,
    lang TEXT NOT NULL,
    first_seen DATETIME NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_items_feed_key UNIQUE (feed, "key"),
    UNIQUE (uid)
);
CREATE INDEX ix_items_first_seen ON items (first_seen);
CREATE TABLE alerts (
    id INTEGER NOT NULL,
    item_id INTEGER NOT NULL,
    topics_key TEXT NOT NULL,
    story_id TEXT,
    created DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_alerts_item_topics UNIQUE (item_id, topics_key),
    FOREIGN KEY(item_id) REFERENCES items (id)
);
CREATE INDEX ix_alerts_created ON alerts (created);
CREATE INDEX ix_alerts_story ON alerts (story_id);
CREATE TABLE matches (
    id INTEGER NOT NULL,
    item_id INTEGER NOT NULL,
    alert_id INTEGER,
    position INTEGER NOT NULL,
    topic TEXT NOT NULL,
    score FLOAT NOT NULL,
    threshold FLOAT NOT NULL,
    matched BOOLEAN NOT NULL,
    terms TEXT NOT NULL,
    passage TEXT NOT NULL,
    keyword_hits TEXT NOT NULL,
    vetoed_by TEXT,
    matched_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(item_id) REFERENCES items (id),
    FOREIGN KEY(alert_id) REFERENCES alerts (id)
);
CREATE INDEX ix_matches_alert ON matches (alert_id);
CREATE INDEX ix_matches_item ON matches (item_id);
CREATE INDEX ix_matches_matched_at ON matches (matched_at);
CREATE TABLE outbox (
    id INTEGER NOT NULL,
    alert_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    item_uid TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER DEFAULT '0' NOT NULL,
    next_attempt DATETIME NOT NULL,
    last_error TEXT,
    last_attempt DATETIME,
    sent_at DATETIME,
    message_ref TEXT,
    created DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_outbox_row UNIQUE (alert_id, channel, kind, item_uid),
    CONSTRAINT ck_outbox_channel CHECK (channel <> ''),
    CONSTRAINT ck_outbox_kind CHECK (kind IN ('send', 'edit')),
    CONSTRAINT ck_outbox_status CHECK (status IN ('pending', 'sent', 'failed')),
    FOREIGN KEY(alert_id) REFERENCES alerts (id)
);
CREATE INDEX ix_outbox_due ON outbox (status, next_attempt, id);
CREATE TABLE stories (
    id TEXT NOT NULL,
    first_item TEXT NOT NULL,
    first_seen DATETIME NOT NULL,
    last_seen DATETIME NOT NULL,
    topics TEXT NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_stories_last_seen ON stories (last_seen);
CREATE TABLE story_items (
    story_id TEXT NOT NULL,
    item_uid TEXT NOT NULL,
    position INTEGER NOT NULL,
    feed TEXT NOT NULL,
    link TEXT,
    added DATETIME NOT NULL,
    PRIMARY KEY (story_id, item_uid),
    FOREIGN KEY(story_id) REFERENCES stories (id) ON DELETE CASCADE
);
CREATE INDEX ix_story_items_uid ON story_items (item_uid);
"""

POSTGRESQL = """
CREATE TABLE schema_version (
    id SERIAL NOT NULL,
    version INTEGER NOT NULL,
    applied TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id)
);
CREATE TABLE feeds (
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    last_fetch TIMESTAMP WITH TIME ZONE,
    last_success TIMESTAMP WITH TIME ZONE,
    next_poll TIMESTAMP WITH TIME ZONE,
    status TEXT DEFAULT 'new' NOT NULL,
    error_count INTEGER DEFAULT '0' NOT NULL,
    last_error TEXT,
    last_error_at TIMESTAMP WITH TIME ZONE,
    redirected_to TEXT,
    items_total INTEGER DEFAULT '0' NOT NULL,
    last_new_item TIMESTAMP WITH TIME ZONE,
    dead_reported BOOLEAN DEFAULT '0' NOT NULL,
    PRIMARY KEY (name)
);
CREATE TABLE items (
    id BIGSERIAL NOT NULL,
    feed TEXT NOT NULL,
    key TEXT NOT NULL,
    uid TEXT NOT NULL,
    title TEXT NOT NULL,
    link TEXT,
    published TIMESTAMP WITH TIME ZONE NOT NULL,
    summary TEXT NOT NULL,
    content TEXT NOT NULL,
    author TEXT NOT NULL,
    lang TEXT NOT NULL,
    first_seen TIMESTAMP WITH TIME ZONE NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_items_feed_key UNIQUE (feed, key),
    UNIQUE (uid)
);
CREATE INDEX ix_items_first_seen ON items (first_seen);
CREATE TABLE alerts (
    id BIGSERIAL NOT NULL,
    item_id BIGINT NOT NULL,
    topics_key TEXT NOT NULL,
    story_id TEXT,
    created TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_alerts_item_topics UNIQUE (item_id, topics_key),
    FOREIGN KEY(item_id) REFERENCES items (id)
);
CREATE INDEX ix_alerts_created ON alerts (created);
CREATE INDEX ix_alerts_story ON alerts (story_id);
CREATE TABLE matches (
    id BIGSERIAL NOT NULL,
    item_id BIGINT NOT NULL,
    alert_id BIGINT,
    position INTEGER NOT NULL,
    topic TEXT NOT NULL,
    score FLOAT NOT NULL,
    threshold FLOAT NOT NULL,
    matched BOOLEAN NOT NULL,
    terms TEXT NOT NULL,
    passage TEXT NOT NULL,
    keyword_hits TEXT NOT NULL,
    vetoed_by TEXT,
    matched_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(item_id) REFERENCES items (id),
    FOREIGN KEY(alert_id) REFERENCES alerts (id)
);
CREATE INDEX ix_matches_alert ON matches (alert_id);
CREATE INDEX ix_matches_item ON matches (item_id);
CREATE INDEX ix_matches_matched_at ON matches (matched_at);
CREATE TABLE outbox (
    id BIGSERIAL NOT NULL,
    alert_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    item_uid TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER DEFAULT '0' NOT NULL,
    next_attempt TIMESTAMP WITH TIME ZONE NOT NULL,
    last_error TEXT,
    last_attempt TIMESTAMP WITH TIME ZONE,
    sent_at TIMESTAMP WITH TIME ZONE,
    message_ref TEXT,
    created TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_outbox_row UNIQUE (alert_id, channel, kind, item_uid),
    CONSTRAINT ck_outbox_channel CHECK (channel <> ''),
    CONSTRAINT ck_outbox_kind CHECK (kind IN ('send', 'edit')),
    CONSTRAINT ck_outbox_status CHECK (status IN ('pending', 'sent', 'failed')),
    FOREIGN KEY(alert_id) REFERENCES alerts (id)
);
CREATE INDEX ix_outbox_due ON outbox (status, next_attempt, id);
CREATE TABLE stories (
    id TEXT NOT NULL,
    first_item TEXT NOT NULL,
    first_seen TIMESTAMP WITH TIME ZONE NOT NULL,
    last_seen TIMESTAMP WITH TIME ZONE NOT NULL,
    topics TEXT NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_stories_last_seen ON stories (last_seen);
CREATE TABLE story_items (
    story_id TEXT NOT NULL,
    item_uid TEXT NOT NULL,
    position INTEGER NOT NULL,
    feed TEXT NOT NULL,
    link TEXT,
    added TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (story_id, item_uid),
    FOREIGN KEY(story_id) REFERENCES stories (id) ON DELETE CASCADE
);
CREATE INDEX ix_story_items_uid ON story_items (item_uid);
"""

DDL = {"sqlite": SQLITE, "postgresql": POSTGRESQL}
_VERSION_ROW = text("INSERT INTO schema_version (id, version, applied) VALUES (1, 1, :applied)").bindparams(
    bindparam("applied", type_=UTCDateTime)
)


def create(conn: Connection) -> None:
    """Build the version-1 schema with its version row, as a version-1 monitor left a new database."""
    for statement in DDL[conn.dialect.name].split(";"):
        if statement.strip():
            conn.exec_driver_sql(statement)
    conn.execute(_VERSION_ROW, {"applied": datetime.now(UTC)})
