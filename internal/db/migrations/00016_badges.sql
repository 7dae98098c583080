-- +goose Up
-- Badge definitions of a community (GA1-GA4): the documented legacy badge
-- object. multiple_awards lets a member hold the badge several times.
CREATE TABLE badges (
    id                      TEXT PRIMARY KEY,
    community_id            TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    title                   TEXT NOT NULL,
    title_key               TEXT NOT NULL,
    action                  TEXT NOT NULL,
    quantity                BIGINT NOT NULL DEFAULT 0,
    description             TEXT NOT NULL DEFAULT '',
    image                   TEXT NOT NULL DEFAULT '',
    dark_image              TEXT NOT NULL DEFAULT '',
    light_image             TEXT NOT NULL DEFAULT '',
    enabled_dark_and_light  BOOLEAN NOT NULL DEFAULT FALSE,
    award                   BOOLEAN NOT NULL DEFAULT FALSE,
    award_currency          BOOLEAN NOT NULL DEFAULT FALSE,
    award_xp_quantity       BIGINT NOT NULL DEFAULT 0,
    award_currency_quantity BIGINT NOT NULL DEFAULT 0,
    attach_required         BOOLEAN NOT NULL DEFAULT FALSE,
    applied                 BOOLEAN NOT NULL DEFAULT FALSE,
    awarded                 BOOLEAN NOT NULL DEFAULT FALSE,
    multiple_awards         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE UNIQUE INDEX badges_title ON badges (community_id, title_key);
CREATE INDEX badges_list ON badges (community_id, created_at, id);

-- What each member holds: one row per (badge, member), times >= 1. Its
-- primary key is what makes a single-award badge held at most once under
-- concurrent awards.
CREATE TABLE badge_holdings (
    community_id     TEXT NOT NULL,
    badge_id         TEXT NOT NULL REFERENCES badges(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL,
    times            BIGINT NOT NULL CHECK (times > 0),
    first_awarded_at BIGINT NOT NULL,
    last_awarded_at  BIGINT NOT NULL,
    PRIMARY KEY (community_id, badge_id, user_id),
    FOREIGN KEY (community_id, user_id) REFERENCES members(community_id, user_id) ON DELETE CASCADE
);
CREATE INDEX badge_holdings_member ON badge_holdings (community_id, user_id, last_awarded_at);

-- Every award of a badge, kept as history (also after the badge is removed
-- or deleted); log_id names the gamification log row of its XP and coins.
CREATE TABLE badge_awards (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    community_id   TEXT NOT NULL,
    badge_id       TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    quantity       BIGINT NOT NULL,
    xp             BIGINT NOT NULL,
    coins          BIGINT NOT NULL,
    log_id         TEXT NOT NULL DEFAULT '',
    application_id TEXT NOT NULL DEFAULT '',
    actor_kind     TEXT NOT NULL,
    actor_id       TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL
);
CREATE INDEX badge_awards_member ON badge_awards (community_id, user_id, badge_id);

-- Members' applications for custom badges, decided by moderators. A member
-- has at most one pending application per badge.
CREATE TABLE badge_applications (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    community_id    TEXT NOT NULL,
    badge_id        TEXT NOT NULL REFERENCES badges(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL,
    status          TEXT NOT NULL,
    proof_text      TEXT NOT NULL DEFAULT '',
    proof_url       TEXT NOT NULL DEFAULT '',
    reason          TEXT NOT NULL DEFAULT '',
    award_id        TEXT NOT NULL DEFAULT '',
    decided_by_kind TEXT NOT NULL DEFAULT '',
    decided_by_id   TEXT NOT NULL DEFAULT '',
    decided_at      BIGINT,
    created_at      BIGINT NOT NULL,
    FOREIGN KEY (community_id, user_id) REFERENCES members(community_id, user_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX badge_applications_pending ON badge_applications (community_id, badge_id, user_id) WHERE status = 'pending';
CREATE INDEX badge_applications_list ON badge_applications (community_id, status, seq);
CREATE INDEX badge_applications_member ON badge_applications (community_id, user_id, seq);

-- +goose Down
DROP TABLE badge_applications;
DROP TABLE badge_awards;
DROP TABLE badge_holdings;
DROP TABLE badges;
