-- +goose Up
CREATE TABLE store_configs (
    id           TEXT PRIMARY KEY,
    community_id TEXT NOT NULL UNIQUE REFERENCES communities(id) ON DELETE CASCADE,
    doc          TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE store_categories (
    id            TEXT PRIMARY KEY,
    community_id  TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    is_archived   BOOLEAN NOT NULL DEFAULT FALSE,
    display_order INTEGER NOT NULL DEFAULT 0,
    doc           TEXT NOT NULL,
    deleted_at    BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX store_categories_name ON store_categories (community_id, name_key) WHERE deleted_at IS NULL;
CREATE INDEX store_categories_order ON store_categories (community_id, display_order, created_at);

CREATE TABLE store_products (
    id            TEXT PRIMARY KEY,
    community_id  TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    category_id   TEXT REFERENCES store_categories(id),
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    type          TEXT NOT NULL,
    price         BIGINT NOT NULL,
    stock         BIGINT,
    total_orders  BIGINT NOT NULL DEFAULT 0,
    is_archived   BOOLEAN NOT NULL DEFAULT FALSE,
    display_order INTEGER NOT NULL DEFAULT 0,
    doc           TEXT NOT NULL,
    deleted_at    BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    CHECK (stock IS NULL OR stock >= 0)
);
CREATE INDEX store_products_order ON store_products (community_id, display_order, created_at);
CREATE INDEX store_products_category ON store_products (community_id, category_id);

CREATE TABLE store_vouchers (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    community_id TEXT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    product_id   TEXT NOT NULL REFERENCES store_products(id) ON DELETE CASCADE,
    code         TEXT NOT NULL,
    expires_at   BIGINT,
    order_id     TEXT,
    assigned_at  BIGINT,
    created_at   BIGINT NOT NULL,
    UNIQUE (product_id, code)
);
CREATE INDEX store_vouchers_free ON store_vouchers (product_id, order_id, expires_at);

-- +goose Down
DROP TABLE store_vouchers;
DROP TABLE store_products;
DROP TABLE store_categories;
DROP TABLE store_configs;
