-- +goose Up
-- How a community's referral links work: which member value a `referral`
-- names (the member's referral code, or a custom user field) and where
-- invite links point.
CREATE TABLE referral_settings (
    community_id  TEXT PRIMARY KEY REFERENCES communities(id) ON DELETE CASCADE,
    mapping       TEXT NOT NULL,
    field_name    TEXT NOT NULL DEFAULT '',
    origin        TEXT NOT NULL DEFAULT '',
    platform_url  TEXT NOT NULL DEFAULT '',
    link_param    TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Each member's referral code, made on first use; codes are unique in a
-- community whatever their case.
CREATE TABLE referral_codes (
    community_id TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL,
    code         TEXT NOT NULL,
    code_key     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (community_id, user_id),
    UNIQUE (community_id, code_key)
);

-- Referral programs: ordered stages (JSON), each with requirements over the
-- referred member's progress and rewards for the referrer.
CREATE TABLE referral_programs (
    id           TEXT PRIMARY KEY,
    community_id TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,
    stages       TEXT NOT NULL,
    sort_order   INTEGER NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX referral_programs_community ON referral_programs (community_id, sort_order, created_at);

-- A stage a referred member completed: recorded once per (stage, referee),
-- with the rewards its referrer received.
CREATE TABLE referral_completions (
    community_id TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    program_id   TEXT NOT NULL,
    stage_id     TEXT NOT NULL,
    referee_id   TEXT NOT NULL,
    referrer_id  TEXT NOT NULL,
    xp           BIGINT NOT NULL,
    coins        BIGINT NOT NULL,
    completed_at BIGINT NOT NULL,
    PRIMARY KEY (program_id, stage_id, referee_id)
);
CREATE INDEX referral_completions_referrer ON referral_completions (community_id, referrer_id);
CREATE INDEX referral_completions_referee ON referral_completions (community_id, referee_id);

CREATE INDEX members_referred_by ON members (community_id, referred_by, created_at);

-- Milestones: a target on one measure of a member's progress, with an
-- optional reward for reaching it.
CREATE TABLE milestones (
    id           TEXT PRIMARY KEY,
    community_id TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    metric       TEXT NOT NULL,
    streak_id    TEXT NOT NULL DEFAULT '',
    target       BIGINT NOT NULL,
    reward_xp    BIGINT NOT NULL DEFAULT 0,
    reward_coins BIGINT NOT NULL DEFAULT 0,
    sort_order   INTEGER NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX milestones_community ON milestones (community_id, sort_order, created_at);

-- When a member first reached a milestone (once per member and milestone).
CREATE TABLE milestone_achievements (
    milestone_id TEXT NOT NULL REFERENCES milestones(id) ON DELETE CASCADE,
    community_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    value        BIGINT NOT NULL,
    achieved_at  BIGINT NOT NULL,
    PRIMARY KEY (milestone_id, user_id)
);
CREATE INDEX milestone_achievements_user ON milestone_achievements (community_id, user_id);

-- +goose Down
DROP TABLE milestone_achievements;
DROP TABLE milestones;
DROP INDEX members_referred_by;
DROP TABLE referral_completions;
DROP TABLE referral_programs;
DROP TABLE referral_codes;
DROP TABLE referral_settings;
