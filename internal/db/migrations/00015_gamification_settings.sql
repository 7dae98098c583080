-- +goose Up
-- A community's gamification settings document (GA7, GA12, GA13): the XP
-- setting per action, the tier list with its levels, and the badge settings,
-- each a JSON object. version is the document's __v.
CREATE TABLE gamification_settings (
    community_id TEXT PRIMARY KEY REFERENCES communities(id) ON DELETE CASCADE,
    id           TEXT NOT NULL UNIQUE,
    xp_setting   TEXT NOT NULL,
    tiers        TEXT NOT NULL,
    badges       TEXT NOT NULL DEFAULT '{}',
    version      INTEGER NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- Every rewardable action a member did, once per (event, action): rewarded
-- or not. Keeps the reward subscriber exactly once on redelivery.
CREATE TABLE gamification_actions (
    community_id TEXT NOT NULL,
    source_event TEXT NOT NULL,
    action       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    rewarded     BOOLEAN NOT NULL,
    occurred_at  BIGINT NOT NULL,
    PRIMARY KEY (community_id, source_event, action, user_id)
);

-- Per member, per UTC day, per action: how many times it was done (US5).
CREATE TABLE gamification_action_days (
    community_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    day          TEXT NOT NULL,
    action       TEXT NOT NULL,
    count        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (community_id, user_id, day, action)
);

-- When a member was last rewarded for an action: the cooldown clock.
CREATE TABLE gamification_cooldowns (
    community_id     TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    action           TEXT NOT NULL,
    last_rewarded_at BIGINT NOT NULL,
    PRIMARY KEY (community_id, user_id, action)
);

-- +goose Down
DROP TABLE gamification_cooldowns;
DROP TABLE gamification_action_days;
DROP TABLE gamification_actions;
DROP TABLE gamification_settings;
