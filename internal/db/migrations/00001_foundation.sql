-- +goose Up
CREATE TABLE communities (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL UNIQUE,
    uri         TEXT NOT NULL,
    uri_key     TEXT NOT NULL UNIQUE,
    domain      TEXT,
    domain_key  TEXT UNIQUE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    community_id  TEXT REFERENCES communities(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    key_prefix    TEXT NOT NULL,
    permissions   TEXT NOT NULL DEFAULT '[]',
    expire_period INTEGER NOT NULL DEFAULT 0,
    expire_at     BIGINT,
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX api_keys_community ON api_keys (community_id, created_at);

CREATE TABLE community_meta (
    id                   TEXT PRIMARY KEY,
    community_id         TEXT NOT NULL UNIQUE REFERENCES communities(id) ON DELETE CASCADE,
    preview_enabled      BOOLEAN NOT NULL DEFAULT FALSE,
    preview_title        TEXT NOT NULL DEFAULT '',
    preview_description  TEXT NOT NULL DEFAULT '',
    preview_image        TEXT,
    members_list_visible BOOLEAN NOT NULL DEFAULT TRUE,
    guest_mode_enabled   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE community_bot (
    id           TEXT PRIMARY KEY,
    community_id TEXT NOT NULL UNIQUE REFERENCES communities(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    avatar       TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE community_theme (
    id           TEXT PRIMARY KEY,
    community_id TEXT NOT NULL UNIQUE REFERENCES communities(id) ON DELETE CASCADE,
    theme        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    community_id TEXT NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    occurred_at  BIGINT NOT NULL
);
CREATE INDEX events_community_seq ON events (community_id, seq);

CREATE TABLE event_offsets (
    subscriber   TEXT NOT NULL,
    community_id TEXT NOT NULL,
    last_seq     BIGINT NOT NULL,
    PRIMARY KEY (subscriber, community_id)
);

CREATE TABLE event_feed (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    community_id TEXT NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    occurred_at  BIGINT NOT NULL
);
CREATE INDEX event_feed_community ON event_feed (community_id, seq);
CREATE INDEX event_feed_community_type ON event_feed (community_id, type, seq);

-- +goose Down
DROP TABLE event_feed;
DROP TABLE event_offsets;
DROP TABLE events;
DROP TABLE community_theme;
DROP TABLE community_bot;
DROP TABLE community_meta;
DROP TABLE api_keys;
DROP TABLE communities;
