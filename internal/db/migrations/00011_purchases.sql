-- +goose Up
-- Redemption statuses a community's orders move through. A default set is
-- created lazily per community; exactly one status is the default for new
-- orders. A final status cannot be left; moving to a refunding one returns
-- the price and the stock.
CREATE TABLE redemption_statuses (
    id            TEXT PRIMARY KEY,
    community_id  TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    color         TEXT NOT NULL,
    is_final      BOOLEAN NOT NULL DEFAULT FALSE,
    refunds       BOOLEAN NOT NULL DEFAULT FALSE,
    is_default    BOOLEAN NOT NULL DEFAULT FALSE,
    display_order INTEGER NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (community_id, name_key)
);

-- Store purchases: one order (redemption transaction, purchase history) per
-- purchase request. order_no is the human ORD... id.
CREATE TABLE redemption_orders (
    id                      TEXT PRIMARY KEY,
    order_no                TEXT NOT NULL UNIQUE,
    community_id            TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    user_id                 TEXT NOT NULL,
    product_id              TEXT NOT NULL,
    product_name            TEXT NOT NULL,
    product_type            TEXT NOT NULL,
    redemption_instructions TEXT NOT NULL DEFAULT '',
    quantity                INTEGER NOT NULL CHECK (quantity >= 1),
    unit_price              BIGINT NOT NULL,
    total_price             BIGINT NOT NULL,
    currency                TEXT NOT NULL,
    vouchers                TEXT NOT NULL DEFAULT '[]',
    user_information        TEXT NOT NULL DEFAULT '{}',
    status_id               TEXT NOT NULL REFERENCES redemption_statuses(id),
    refunded                BOOLEAN NOT NULL DEFAULT FALSE,
    refunded_at             BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX redemption_orders_community ON redemption_orders (community_id, created_at);
CREATE INDEX redemption_orders_member ON redemption_orders (community_id, user_id, product_id, created_at);
CREATE INDEX redemption_orders_status ON redemption_orders (community_id, status_id, created_at);

-- Every status an order was given, the first one included.
CREATE TABLE redemption_status_history (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    community_id   TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    order_id       TEXT NOT NULL REFERENCES redemption_orders(id) ON DELETE CASCADE,
    from_status_id TEXT,
    status_id      TEXT NOT NULL REFERENCES redemption_statuses(id),
    refunded       BOOLEAN NOT NULL DEFAULT FALSE,
    actor_kind     TEXT NOT NULL,
    actor_id       TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL
);
CREATE INDEX redemption_status_history_order ON redemption_status_history (order_id, seq);

-- +goose Down
DROP TABLE redemption_status_history;
DROP TABLE redemption_orders;
DROP TABLE redemption_statuses;
