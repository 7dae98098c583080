-- +goose Up
-- Streak definitions: conditions over actions (JSON), combined with an
-- operator, per timeframe, on active days, in a time zone, from a start day.
CREATE TABLE streaks (
    id               TEXT PRIMARY KEY,
    community_id     TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    timezone         TEXT NOT NULL,
    start_at         BIGINT NOT NULL,
    timeframe_value  TEXT NOT NULL,
    timeframe_count  INTEGER NOT NULL,
    operator         TEXT NOT NULL,
    conditions       TEXT NOT NULL,
    active_days_type TEXT NOT NULL,
    active_days      TEXT NOT NULL,
    sort_order       INTEGER NOT NULL DEFAULT 0,
    version          INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX streaks_community ON streaks (community_id, sort_order, created_at);

-- Countable member actions taken from outbox events (one row per event).
CREATE TABLE streak_actions (
    event_id     TEXT PRIMARY KEY,
    community_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    occurred_at  BIGINT NOT NULL
);
CREATE INDEX streak_actions_user ON streak_actions (community_id, user_id, occurred_at);

-- A member's standing in one streak: the last qualified period is kept as
-- the instant it started, so a changed schedule still finds it.
CREATE TABLE streak_members (
    streak_id         TEXT NOT NULL REFERENCES streaks(id) ON DELETE CASCADE,
    community_id      TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    current_count     BIGINT NOT NULL DEFAULT 0,
    longest_count     BIGINT NOT NULL DEFAULT 0,
    last_period_start BIGINT,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (streak_id, user_id)
);

-- Every change of a member's streak: started, extended, broken.
CREATE TABLE streak_logs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    community_id TEXT NOT NULL,
    streak_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    count_after  BIGINT NOT NULL,
    count_before BIGINT NOT NULL,
    period_start BIGINT NOT NULL,
    period_end   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX streak_logs_user ON streak_logs (community_id, user_id, seq);

-- The built-in login streak: consecutive UTC days with a visit.
CREATE TABLE login_streaks (
    community_id  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    current_count BIGINT NOT NULL,
    longest_count BIGINT NOT NULL,
    last_day      TEXT NOT NULL,
    PRIMARY KEY (community_id, user_id)
);

-- The community's spin wheel: weighted segments (JSON) and the free-spin
-- cooldown.
CREATE TABLE spin_wheels (
    community_id      TEXT PRIMARY KEY REFERENCES communities(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    enabled           BOOLEAN NOT NULL,
    free_spin_enabled BOOLEAN NOT NULL,
    cooldown_seconds  BIGINT NOT NULL,
    segments          TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

-- A member's spins: extra spins held, lifetime granted, when the next free
-- spin is due (0 = now), spins used.
CREATE TABLE spin_members (
    community_id       TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    extra_spins        BIGINT NOT NULL DEFAULT 0 CHECK (extra_spins >= 0),
    extra_granted      BIGINT NOT NULL DEFAULT 0,
    next_free_spin_at  BIGINT NOT NULL DEFAULT 0,
    spins_used         BIGINT NOT NULL DEFAULT 0,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (community_id, user_id),
    FOREIGN KEY (community_id, user_id) REFERENCES members(community_id, user_id) ON DELETE CASCADE
);

-- Every mini-game play and its prize.
CREATE TABLE minigame_logs (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    community_id    TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    game            TEXT NOT NULL,
    segment_id      TEXT NOT NULL,
    label           TEXT NOT NULL,
    prize_type      TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    product_id      TEXT NOT NULL DEFAULT '',
    free_spin       BOOLEAN NOT NULL,
    reward_ref      TEXT NOT NULL DEFAULT '',
    actor_kind      TEXT NOT NULL,
    actor_id        TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL
);
CREATE INDEX minigame_logs_user ON minigame_logs (community_id, user_id, seq);

-- +goose Down
DROP TABLE minigame_logs;
DROP TABLE spin_members;
DROP TABLE spin_wheels;
DROP TABLE login_streaks;
DROP TABLE streak_logs;
DROP TABLE streak_members;
DROP TABLE streak_actions;
DROP TABLE streaks;
