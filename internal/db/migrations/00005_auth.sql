-- +goose Up
-- Installation-wide settings; holds the session-signing secret made on first start.
CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- User API keys belong to a user and may be limited to some channels.
ALTER TABLE api_keys ADD COLUMN user_id TEXT REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE api_keys ADD COLUMN channel_ids TEXT NOT NULL DEFAULT '[]';
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

-- Signed-out session tokens, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

-- One live email-verification code per user, stored as an HMAC.
CREATE TABLE email_codes (
    user_id      TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    community_id TEXT NOT NULL,
    code_hash    TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- Failed-login counters (fixed windows) per account and per client address,
-- shared by every node.
CREATE TABLE login_limits (
    subject      TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start BIGINT NOT NULL
);
CREATE INDEX login_limits_window ON login_limits (window_start);

-- Secure Auth hand-offs: one-time login-link tokens, stored hashed.
CREATE TABLE secure_auth_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    community_id TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_id       TEXT NOT NULL,
    host         TEXT NOT NULL,
    access_level INTEGER NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX secure_auth_tokens_expiry ON secure_auth_tokens (expires_at);

-- Outgoing mail: every message, its delivery state; without SMTP the
-- operator reads messages here.
CREATE TABLE mail_outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    to_addr    TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    status     TEXT NOT NULL,
    error      TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    sent_at    BIGINT
);
CREATE INDEX mail_outbox_created ON mail_outbox (created_at);

-- +goose Down
DROP TABLE mail_outbox;
DROP TABLE secure_auth_tokens;
DROP TABLE login_limits;
DROP TABLE email_codes;
DROP TABLE revoked_tokens;
DROP INDEX api_keys_user;
-- SQLite cannot drop a column that carries a foreign key: user_id and
-- channel_ids stay (unused) after a downgrade.
DROP TABLE settings;
