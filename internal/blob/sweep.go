package blob

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/rallyhq/rally/internal/db"
)

// unreferenced is true for a blob b that no row refers to, each column
// checked with one probe of its index: a user's uploaded avatar
// (users.avatar_file), a message upload (message_files.id; messages attach
// only keys recorded there, and those rows live as long as their
// community), and a badge application's proof file (badge_applications.
// proof_file_key), except on an application rejected before the argument
// (the decision time beyond which RejectedProofRetention has passed).
// A new column holding blob keys must be added here, with its index.
const unreferenced = `NOT EXISTS (SELECT 1 FROM users u WHERE u.avatar_file = b.key)
	AND NOT EXISTS (SELECT 1 FROM message_files f WHERE f.id = b.key)
	AND NOT EXISTS (SELECT 1 FROM badge_applications a WHERE a.proof_file_key = b.key AND a.proof_file_key <> ''
		AND (a.status <> 'rejected' OR a.decided_at IS NULL OR a.decided_at >= ?))`

// sweepPage is how many old blobs one read of the sweep examines.
const sweepPage = 1000

// Sweep deletes the blobs nothing refers to (see unreferenced) that are
// older than the grace period, and returns how many it deleted. It walks
// the old blobs in pages on the reader, so the writer is only taken to
// delete, and every delete checks the references again in its own
// statement: a blob that gained a reference, or that Put refreshed, since
// the read stays.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	now := s.clock.Now()
	cutoff := now.Add(-s.grace).UnixMilli()
	rejectedBefore := now.Add(-RejectedProofRetention).UnixMilli()
	var (
		deleted   int
		afterAt   int64 = -1 << 62
		afterKey  string
		lastBatch bool
	)
	for !lastBatch {
		type old struct {
			key    string
			at     int64
			orphan bool
		}
		rows, err := s.db.Query(ctx, `SELECT b.key, b.created_at, CASE WHEN `+unreferenced+` THEN 1 ELSE 0 END
			FROM blobs b WHERE b.created_at < ? AND (b.created_at, b.key) > (?, ?)
			ORDER BY b.created_at, b.key LIMIT ?`, rejectedBefore, cutoff, afterAt, afterKey, sweepPage)
		page, err := db.Collect(rows, err, "sweep blobs", func(r db.Scanner) (old, error) {
			var o old
			err := r.Scan(&o.key, &o.at, &o.orphan)
			return o, err
		})
		if err != nil {
			return deleted, err
		}
		var orphans []any
		for _, o := range page {
			if o.orphan {
				orphans = append(orphans, o.key)
			}
		}
		if len(page) > 0 {
			afterKey, afterAt = page[len(page)-1].key, page[len(page)-1].at
		}
		lastBatch = len(page) < sweepPage
		for len(orphans) > 0 {
			batch := orphans[:min(len(orphans), sweepBatch)]
			orphans = orphans[len(batch):]
			args := append(append([]any{}, batch...), cutoff, rejectedBefore)
			res, err := s.db.Exec(ctx, `DELETE FROM blobs AS b WHERE b.key IN `+db.In(len(batch))+`
				AND b.created_at < ? AND `+unreferenced, args...)
			if err != nil {
				return deleted, fmt.Errorf("sweep blobs: delete: %w", err)
			}
			if k, err := res.RowsAffected(); err == nil {
				deleted += int(k)
			}
		}
	}
	if deleted > 0 {
		s.log.InfoContext(ctx, "blob sweep", "deleted", deleted)
	}
	return deleted, nil
}

// sweepWorker runs Sweep for the periodic SweepArgs job.
type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	s *Store
}

// Work deletes unreferenced blobs.
func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	_, err := w.s.Sweep(ctx)
	return err
}
