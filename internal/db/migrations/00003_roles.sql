-- +goose Up
CREATE TABLE roles (
    id                  TEXT PRIMARY KEY,
    community_id        TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    title               TEXT NOT NULL,
    title_key           TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    class               TEXT NOT NULL DEFAULT '',
    sort_order          INTEGER NOT NULL DEFAULT 0,
    billable            BOOLEAN NOT NULL DEFAULT FALSE,
    is_everyone         BOOLEAN NOT NULL DEFAULT FALSE,
    server_permissions  TEXT NOT NULL DEFAULT '{}',
    channel_permissions TEXT NOT NULL DEFAULT '{}',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (community_id, title_key)
);

CREATE TABLE member_roles (
    community_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    role_id      TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (community_id, user_id, role_id),
    FOREIGN KEY (community_id, user_id) REFERENCES members(community_id, user_id) ON DELETE CASCADE
);
CREATE INDEX member_roles_role ON member_roles (role_id);

-- +goose Down
DROP TABLE member_roles;
DROP TABLE roles;
