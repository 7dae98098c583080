-- +goose Up
-- Get Users with Filters reads live members in id order, filters them on
-- joined_at and visit_count, and counts every match in page mode. This index
-- answers all of that from the index alone: deleted_at is a key column (not
-- a partial-index condition) so a count or a scan never visits the table.
-- It replaces members_live.
CREATE INDEX members_filter ON members (community_id, deleted_at, user_id, joined_at, visit_count);
DROP INDEX members_live;

-- Counting the members behind a set of custom-field matches probes members by
-- user id; leading with user_id makes each probe a short seek that the index
-- answers alone. It replaces members_user, its prefix (a user's communities).
CREATE INDEX members_by_user ON members (user_id, community_id, deleted_at, visit_count, joined_at);
DROP INDEX members_user;

-- Custom-field conditions: an exact value or a range leads straight to the
-- matching user ids, with no table lookup per match.
CREATE INDEX user_field_values_text_user ON user_field_values (field_id, text_value, user_id);
CREATE INDEX user_field_values_num_user ON user_field_values (field_id, num_value, user_id);
CREATE INDEX user_field_values_time_user ON user_field_values (field_id, time_value, user_id);
DROP INDEX user_field_values_text;
DROP INDEX user_field_values_num;
DROP INDEX user_field_values_time;

-- +goose Down
CREATE INDEX user_field_values_time ON user_field_values (field_id, time_value);
CREATE INDEX user_field_values_num ON user_field_values (field_id, num_value);
CREATE INDEX user_field_values_text ON user_field_values (field_id, text_value);
DROP INDEX user_field_values_time_user;
DROP INDEX user_field_values_num_user;
DROP INDEX user_field_values_text_user;
CREATE INDEX members_user ON members (user_id);
DROP INDEX members_by_user;
CREATE INDEX members_live ON members (community_id, user_id) WHERE deleted_at IS NULL;
DROP INDEX members_filter;
