-- +goose Up
CREATE TABLE user_fields (
    id            TEXT PRIMARY KEY,
    community_id  TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    field         TEXT NOT NULL,
    field_key     TEXT NOT NULL,
    name          TEXT NOT NULL,
    type          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    required      BOOLEAN NOT NULL DEFAULT FALSE,
    default_value TEXT,
    options       TEXT NOT NULL DEFAULT '[]',
    visibility    TEXT NOT NULL DEFAULT 'admin',
    creator_kind  TEXT NOT NULL DEFAULT '',
    creator_id    TEXT NOT NULL DEFAULT '',
    deleted_at    BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX user_fields_key ON user_fields (community_id, field_key) WHERE deleted_at IS NULL;
CREATE INDEX user_fields_community ON user_fields (community_id, created_at);

CREATE TABLE user_field_values (
    community_id TEXT NOT NULL,
    field_id     TEXT NOT NULL REFERENCES user_fields(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    value        TEXT NOT NULL,
    text_value   TEXT,
    num_value    DOUBLE PRECISION,
    time_value   BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (field_id, user_id)
);
CREATE INDEX user_field_values_text ON user_field_values (field_id, text_value);
CREATE INDEX user_field_values_num ON user_field_values (field_id, num_value);
CREATE INDEX user_field_values_time ON user_field_values (field_id, time_value);
CREATE INDEX user_field_values_user ON user_field_values (community_id, user_id);

CREATE TABLE user_field_history (
    id              TEXT PRIMARY KEY,
    community_id    TEXT NOT NULL,
    field_id        TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    old_value       TEXT,
    new_value       TEXT,
    changed_by_kind TEXT NOT NULL,
    changed_by      TEXT NOT NULL DEFAULT '',
    source          TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL
);
CREATE INDEX user_field_history_community ON user_field_history (community_id, created_at, id);
CREATE INDEX user_field_history_field ON user_field_history (field_id, created_at, id);
CREATE INDEX user_field_history_user ON user_field_history (community_id, user_id, created_at, id);

-- +goose Down
DROP TABLE user_field_history;
DROP TABLE user_field_values;
DROP TABLE user_fields;
