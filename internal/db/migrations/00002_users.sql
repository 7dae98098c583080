-- +goose Up
CREATE TABLE users (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    email          TEXT NOT NULL,
    email_key      TEXT NOT NULL UNIQUE,
    username       TEXT NOT NULL,
    username_key   TEXT NOT NULL UNIQUE,
    firstname      TEXT NOT NULL DEFAULT '',
    lastname       TEXT NOT NULL DEFAULT '',
    displayname    TEXT NOT NULL DEFAULT '',
    avatar         TEXT,
    language       TEXT NOT NULL DEFAULT 'English',
    password_hash  TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    token_key      TEXT NOT NULL,
    last_login_at  BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE members (
    community_id   TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_level   INTEGER NOT NULL DEFAULT 1,
    joined         BOOLEAN NOT NULL DEFAULT TRUE,
    is_owner       BOOLEAN NOT NULL DEFAULT FALSE,
    joined_at      BIGINT,
    deleted_at     BIGINT,
    visit_count    INTEGER NOT NULL DEFAULT 0,
    last_visit_day TEXT,
    last_seen_at   BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (community_id, user_id)
);
CREATE INDEX members_user ON members (user_id);
CREATE INDEX members_community_joined ON members (community_id, joined_at);

-- +goose Down
DROP TABLE members;
DROP TABLE users;
