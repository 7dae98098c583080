-- +goose Up
-- blobs: uploaded files (avatars, message images, badge proof files), kept
-- in the database so every node sharing it serves every file. key is the
-- SHA-256 (hex) of data plus an extension naming content_type, so the same
-- bytes are one row. created_at (Unix ms) is refreshed when an old blob is
-- uploaded again; the garbage-collection sweep deletes blobs nothing refers
-- to once created_at is older than its grace period (see internal/blob).
CREATE TABLE blobs (
    key          TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    data         BLOB NOT NULL
);
CREATE INDEX blobs_created ON blobs (created_at, key);

-- The columns naming a blob, each indexed so the sweep checks a blob with
-- one index probe per column: a user's uploaded avatar (NULL when the
-- avatar is not an uploaded file), a badge application's proof file ('' when
-- none), and message uploads (message_files.id, whose primary key starts
-- with community_id). Messages attach only keys recorded in message_files.
ALTER TABLE users ADD COLUMN avatar_file TEXT;
UPDATE users SET avatar_file = CASE WHEN avatar LIKE '%.webp' THEN substr(avatar, length(avatar) - 68)
    ELSE substr(avatar, length(avatar) - 67) END
    WHERE avatar LIKE '%/v1/files/%';
CREATE INDEX users_avatar_file ON users (avatar_file) WHERE avatar_file IS NOT NULL;

ALTER TABLE badge_applications ADD COLUMN proof_file_key TEXT NOT NULL DEFAULT '';
UPDATE badge_applications SET proof_file_key = CASE WHEN proof_file_url LIKE '%.webp' THEN substr(proof_file_url, length(proof_file_url) - 68)
    ELSE substr(proof_file_url, length(proof_file_url) - 67) END
    WHERE proof_file_url LIKE '%/v1/files/%';
CREATE INDEX badge_applications_proof_file ON badge_applications (proof_file_key) WHERE proof_file_key <> '';

CREATE INDEX message_files_id ON message_files (id);

-- +goose Down
DROP INDEX message_files_id;
DROP INDEX badge_applications_proof_file;
ALTER TABLE badge_applications DROP COLUMN proof_file_key;
DROP INDEX users_avatar_file;
ALTER TABLE users DROP COLUMN avatar_file;
DROP TABLE blobs;
