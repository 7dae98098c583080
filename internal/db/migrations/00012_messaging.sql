-- +goose Up
-- channels: a community's channels. channel_type is open (text), forum,
-- iframe (url set), direct (public direct channel) or dm (a private DM
-- between dm_user_a and dm_user_b, ids in sorted order). last_seq numbers the
-- channel's messages (the paging cursor); message_count counts the live ones.
-- A deleted channel keeps its row and its messages (deleted_at set).
CREATE TABLE channels (
    id            TEXT PRIMARY KEY,
    community_id  TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    topic         TEXT NOT NULL,
    channel_type  TEXT NOT NULL,
    url           TEXT,
    category      TEXT NOT NULL DEFAULT '',
    sort_order    INTEGER NOT NULL DEFAULT 0,
    creator_id    TEXT,
    dm_user_a     TEXT,
    dm_user_b     TEXT,
    last_seq      BIGINT NOT NULL DEFAULT 0,
    message_count BIGINT NOT NULL DEFAULT 0,
    version       INTEGER NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    deleted_at    BIGINT
);
CREATE INDEX channels_community_order ON channels (community_id, sort_order, created_at, id);
CREATE UNIQUE INDEX channels_dm_pair ON channels (community_id, dm_user_a, dm_user_b) WHERE dm_user_a IS NOT NULL;

-- channel_role_overrides: per channel and role, a permission (view, post,
-- attach, mention, manage as role channel-permission keys) allowed or denied.
CREATE TABLE channel_role_overrides (
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    role_id    TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    allow      BOOLEAN NOT NULL,
    PRIMARY KEY (channel_id, role_id, permission)
);

-- forum_topics: the topics of a forum channel; a forum post names one.
CREATE TABLE forum_topics (
    id            TEXT PRIMARY KEY,
    community_id  TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    channel_id    TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    title         TEXT NOT NULL,
    creator_id    TEXT,
    message_count BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX forum_topics_channel ON forum_topics (channel_id, created_at, id);

-- messages: seq is global and, since a community's sends serialise on the
-- community lock, commit-ordered within a community (the community-wide
-- cursor); channel_seq is the per-channel cursor.
CREATE TABLE messages (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    community_id   TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    channel_id     TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    channel_seq    BIGINT NOT NULL,
    user_id        TEXT NOT NULL,
    body           TEXT NOT NULL,
    forum_topic_id TEXT,
    reply_to       TEXT,
    thread_id      TEXT,
    reply_count    INTEGER NOT NULL DEFAULT 0,
    attachments    TEXT NOT NULL DEFAULT '[]',
    mentions       TEXT NOT NULL DEFAULT '[]',
    created_at     BIGINT NOT NULL,
    edited_at      BIGINT,
    deleted_at     BIGINT,
    UNIQUE (channel_id, channel_seq)
);
CREATE INDEX messages_community_seq ON messages (community_id, seq);
CREATE INDEX messages_user ON messages (community_id, user_id, seq);

-- message_reactions: one row per user, message and emoji.
CREATE TABLE message_reactions (
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    emoji      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

-- message_files: images uploaded for messages (MS5), by community; the
-- bytes live in the blob store under id.
CREATE TABLE message_files (
    community_id TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    url          TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (community_id, id)
);

-- message_counters: a member's messaging activity, updated in the
-- transaction of each write (Get User Data's totalMessages, replySent,
-- totalReactions).
CREATE TABLE message_counters (
    community_id    TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    total_messages  BIGINT NOT NULL DEFAULT 0,
    reply_sent      BIGINT NOT NULL DEFAULT 0,
    total_reactions BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (community_id, user_id)
);

-- +goose Down
DROP TABLE message_counters;
DROP TABLE message_files;
DROP TABLE message_reactions;
DROP TABLE messages;
DROP TABLE forum_topics;
DROP TABLE channel_role_overrides;
DROP TABLE channels;
