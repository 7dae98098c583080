-- +goose Up
-- kind is the canonical type a field's values are validated and indexed by
-- (text, multi-line-text, number, boolean, date, select); type keeps the
-- spelling the client sent (single-line-text, numerical, ...).
ALTER TABLE user_fields ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';

-- seq orders history rows exactly (newest first), even when several share a
-- millisecond. SQLite fills it from the rowid, which only grows because
-- history rows are never deleted.
ALTER TABLE user_field_history ADD COLUMN seq BIGINT;
-- +goose StatementBegin
CREATE TRIGGER user_field_history_seq AFTER INSERT ON user_field_history
BEGIN
    UPDATE user_field_history SET seq = NEW.rowid WHERE rowid = NEW.rowid;
END;
-- +goose StatementEnd
CREATE INDEX user_field_history_community_seq ON user_field_history (community_id, seq);
CREATE INDEX user_field_history_field_seq ON user_field_history (field_id, seq);
CREATE INDEX user_field_history_user_seq ON user_field_history (community_id, user_id, seq);

-- +goose Down
DROP INDEX user_field_history_user_seq;
DROP INDEX user_field_history_field_seq;
DROP INDEX user_field_history_community_seq;
DROP TRIGGER user_field_history_seq;
ALTER TABLE user_field_history DROP COLUMN seq;
ALTER TABLE user_fields DROP COLUMN kind;
