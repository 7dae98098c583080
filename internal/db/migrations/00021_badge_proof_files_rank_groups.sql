-- +goose Up
-- A badge application may carry an uploaded proof file (an image or a PDF
-- kept in the blob store): the URL it is served at, the name the member
-- gave it, its sniffed Content-Type and its size in bytes. Empty: none.
ALTER TABLE badge_applications ADD COLUMN proof_file_url TEXT NOT NULL DEFAULT '';
ALTER TABLE badge_applications ADD COLUMN proof_file_name TEXT NOT NULL DEFAULT '';
ALTER TABLE badge_applications ADD COLUMN proof_file_type TEXT NOT NULL DEFAULT '';
ALTER TABLE badge_applications ADD COLUMN proof_file_size BIGINT NOT NULL DEFAULT 0;

-- The score histogram's second level: how many scores of a period fall in
-- each group of 64 consecutive buckets (grp = floor(bucket / 64), one group
-- per power of two of the score). Members above a bucket are the groups
-- above its group (a few dozen rows) plus the buckets above it inside its
-- group (at most 63), instead of every bucket above it (hundreds).
CREATE TABLE leaderboard_bucket_groups (
    leaderboard_id TEXT NOT NULL REFERENCES leaderboards(id) ON DELETE CASCADE,
    period         TEXT NOT NULL,
    grp            BIGINT NOT NULL,
    n              BIGINT NOT NULL,
    PRIMARY KEY (leaderboard_id, period, grp)
);
INSERT INTO leaderboard_bucket_groups (leaderboard_id, period, grp, n)
    SELECT leaderboard_id, period, CASE WHEN bucket >= 0 THEN bucket / 64 ELSE (bucket - 63) / 64 END, SUM(n)
    FROM leaderboard_buckets
    GROUP BY leaderboard_id, period, CASE WHEN bucket >= 0 THEN bucket / 64 ELSE (bucket - 63) / 64 END;

-- Sums over the histogram read the counts from the index alone (SQLite
-- otherwise visits the table once per bucket row).
CREATE INDEX leaderboard_buckets_sum ON leaderboard_buckets (leaderboard_id, period, bucket, n);
CREATE INDEX leaderboard_bucket_groups_sum ON leaderboard_bucket_groups (leaderboard_id, period, grp, n);

-- +goose Down
DROP INDEX leaderboard_bucket_groups_sum;
DROP INDEX leaderboard_buckets_sum;
DROP TABLE leaderboard_bucket_groups;
ALTER TABLE badge_applications DROP COLUMN proof_file_size;
ALTER TABLE badge_applications DROP COLUMN proof_file_type;
ALTER TABLE badge_applications DROP COLUMN proof_file_name;
ALTER TABLE badge_applications DROP COLUMN proof_file_url;
