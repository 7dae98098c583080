-- +goose Up
-- kind is the canonical type a field's values are validated and indexed by
-- (text, multi-line-text, number, boolean, date, select); type keeps the
-- spelling the client sent (single-line-text, numerical, ...).
ALTER TABLE user_fields ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';

-- seq orders a community's history rows exactly (newest first), even when
-- several share a millisecond: the writer assigns max + 1 under the
-- community's write lock.
ALTER TABLE user_field_history ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX user_field_history_community_seq ON user_field_history (community_id, seq);
CREATE INDEX user_field_history_field_seq ON user_field_history (field_id, seq);
CREATE INDEX user_field_history_user_seq ON user_field_history (community_id, user_id, seq);

-- +goose Down
DROP INDEX user_field_history_user_seq;
DROP INDEX user_field_history_field_seq;
DROP INDEX user_field_history_community_seq;
ALTER TABLE user_field_history DROP COLUMN seq;
ALTER TABLE user_fields DROP COLUMN kind;
