-- +goose Up
-- A community's leaderboards. doc holds the stored shape the API answers
-- with (name, columns, widget, permissions...); the columns beside it are
-- what queries filter on and what standings need without decoding doc.
CREATE TABLE leaderboards (
    id           TEXT PRIMARY KEY,
    community_id TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    slug         TEXT NOT NULL,
    name         TEXT NOT NULL,
    rank_by      TEXT NOT NULL,
    is_default   BOOLEAN NOT NULL DEFAULT FALSE,
    start_at     BIGINT,
    end_at       BIGINT,
    doc          TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (community_id, slug)
);
CREATE INDEX leaderboards_metric ON leaderboards (community_id, rank_by);
CREATE UNIQUE INDEX leaderboards_default ON leaderboards (community_id) WHERE is_default = TRUE;

-- A member's score on one leaderboard in one period (period: "a" for the
-- whole run, "d:2026-04-28", "w:2026-04-27" (the Monday), "m:2026-04",
-- "y:2026", in the leaderboard's time zone). reached_at is when the score
-- last changed: at equal scores the earlier one ranks first.
CREATE TABLE leaderboard_scores (
    leaderboard_id TEXT NOT NULL REFERENCES leaderboards(id) ON DELETE CASCADE,
    period         TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    score          BIGINT NOT NULL,
    reached_at     BIGINT NOT NULL,
    PRIMARY KEY (leaderboard_id, period, user_id)
);
-- Standings order: top-N is a range scan, "members ahead" a range count.
CREATE INDEX leaderboard_scores_rank ON leaderboard_scores (leaderboard_id, period, score DESC, reached_at, user_id);

-- How many scores of a period fall in each score bucket (about 1.5% of the
-- score wide): the rank of a member adds the buckets above theirs (a few
-- hundred rows at most) to a count inside their own bucket, so it never
-- walks the whole board.
CREATE TABLE leaderboard_buckets (
    leaderboard_id TEXT NOT NULL REFERENCES leaderboards(id) ON DELETE CASCADE,
    period         TEXT NOT NULL,
    bucket         BIGINT NOT NULL,
    n              BIGINT NOT NULL,
    PRIMARY KEY (leaderboard_id, period, bucket)
);

-- Deleted members are few: standings subtract them through this index.
CREATE INDEX members_deleted ON members (community_id, user_id) WHERE deleted_at IS NOT NULL;

-- +goose Down
DROP INDEX members_deleted;
DROP TABLE leaderboard_buckets;
DROP TABLE leaderboard_scores;
DROP TABLE leaderboards;
