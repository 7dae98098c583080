-- +goose Up
-- version is the role's revision (the API's __v): it rises by one on every update.
ALTER TABLE roles ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX roles_community_order ON roles (community_id, sort_order);

-- +goose Down
DROP INDEX roles_community_order;
ALTER TABLE roles DROP COLUMN version;
