-- +goose Up
-- A member's balance per currency. Integers only; never negative.
CREATE TABLE wallet_balances (
    community_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    currency     TEXT NOT NULL,
    balance      BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (community_id, user_id, currency),
    FOREIGN KEY (community_id, user_id) REFERENCES members(community_id, user_id) ON DELETE CASCADE
);

-- Every balance change, written in the transaction that changes the balance.
-- seq orders a member's rows in commit order and is the paging cursor.
CREATE TABLE wallet_ledger (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    community_id  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    currency      TEXT NOT NULL,
    amount        BIGINT NOT NULL,
    balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
    reason        TEXT NOT NULL,
    reference     TEXT NOT NULL DEFAULT '',
    actor_kind    TEXT NOT NULL,
    actor_id      TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL
);
CREATE INDEX wallet_ledger_member ON wallet_ledger (community_id, user_id, seq);
CREATE INDEX wallet_ledger_member_currency ON wallet_ledger (community_id, user_id, currency, seq);
CREATE INDEX wallet_ledger_member_time ON wallet_ledger (community_id, user_id, currency, created_at);

-- Answers of value-moving writes, kept so a retried request is applied once.
CREATE TABLE idempotency_keys (
    community_id TEXT NOT NULL,
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    response     TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (community_id, scope, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE wallet_ledger;
DROP TABLE wallet_balances;
