-- +goose Up
-- The highest outbox sequence pruned per community: a realtime client
-- resuming from an older event id is told its missed events are gone.
CREATE TABLE event_horizons (
    community_id TEXT PRIMARY KEY,
    pruned_seq   BIGINT NOT NULL
);

-- +goose Down
DROP TABLE event_horizons;
