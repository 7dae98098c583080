-- +goose Up
-- external_id is the community's "active user identifier field" (Create New
-- User's externalId); referred_by is the member who referred this one.
ALTER TABLE members ADD COLUMN external_id TEXT;
ALTER TABLE members ADD COLUMN referred_by TEXT;
CREATE UNIQUE INDEX members_external_id ON members (community_id, external_id) WHERE external_id IS NOT NULL;
-- Live members in id order: the filter's scan and cursor.
CREATE INDEX members_live ON members (community_id, user_id) WHERE deleted_at IS NULL;
CREATE INDEX members_community_visits ON members (community_id, visit_count);
-- Exact-match and range filters on default fields.
CREATE INDEX users_firstname ON users (firstname);
CREATE INDEX users_lastname ON users (lastname);
CREATE INDEX users_displayname ON users (displayname);
CREATE INDEX users_last_login ON users (last_login_at);

-- +goose Down
DROP INDEX users_last_login;
DROP INDEX users_displayname;
DROP INDEX users_lastname;
DROP INDEX users_firstname;
DROP INDEX members_community_visits;
DROP INDEX members_live;
DROP INDEX members_external_id;
ALTER TABLE members DROP COLUMN referred_by;
ALTER TABLE members DROP COLUMN external_id;
