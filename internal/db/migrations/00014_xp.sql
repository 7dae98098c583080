-- +goose Up
-- A member's lifetime XP (levels and tiers follow it; it is not spendable).
CREATE TABLE xp_totals (
    community_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    xp           BIGINT NOT NULL DEFAULT 0 CHECK (xp >= 0),
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (community_id, user_id),
    FOREIGN KEY (community_id, user_id) REFERENCES members(community_id, user_id) ON DELETE CASCADE
);
CREATE INDEX xp_totals_rank ON xp_totals (community_id, xp);

-- Every award of XP and/or coins: the gamification log. An award caused by
-- an outbox event names it in source_event, and each (action, event) pair is
-- applied once.
CREATE TABLE gamification_logs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    community_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    action       TEXT NOT NULL,
    xp           BIGINT NOT NULL,
    coins        BIGINT NOT NULL,
    xp_after     BIGINT NOT NULL,
    source_event TEXT NOT NULL DEFAULT '',
    reference    TEXT NOT NULL DEFAULT '',
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT NOT NULL DEFAULT '',
    day          TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX gamification_logs_source ON gamification_logs (community_id, action, source_event) WHERE source_event <> '';
CREATE INDEX gamification_logs_user ON gamification_logs (community_id, user_id, seq);
CREATE INDEX gamification_logs_day ON gamification_logs (community_id, day, user_id);

-- +goose Down
DROP TABLE gamification_logs;
DROP TABLE xp_totals;
