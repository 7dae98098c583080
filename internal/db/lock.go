package db

// SkipLocked is the suffix for a SELECT that claims one of many
// interchangeable rows inside a transaction (a free voucher code, a queued
// item): FOR UPDATE SKIP LOCKED on PostgreSQL, so concurrent claimers each
// take a different row instead of queueing on the same one; nothing on SQLite,
// whose single writer connection already serialises write transactions.
func (d *DB) SkipLocked() string {
	if d.Dialect == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}
