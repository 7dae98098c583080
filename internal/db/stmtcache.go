package db

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// maxWriteStmts bounds the statements kept prepared on the SQLite writer.
// Rally's write statements are a few hundred fixed texts; statements built
// with a variable number of placeholders are kept too until the bound is
// reached, after which new texts simply run unprepared.
const maxWriteStmts = 1024

// writeStmts is the cache of statements prepared on the SQLite writer.
// A text maps to nil when preparing it failed (it then always runs
// unprepared and reports its errors as usual). A text is prepared once a
// second transaction has run it: one-off statements are not worth it.
type writeStmts struct {
	mu   sync.RWMutex
	m    map[string]*sql.Stmt
	seen map[string]bool
}

// get returns q's statement and whether q was tried.
func (w *writeStmts) get(q string) (*sql.Stmt, bool) {
	w.mu.RLock()
	st, ok := w.m[q]
	w.mu.RUnlock()
	return st, ok
}

// prepare prepares the texts not tried yet that an earlier transaction
// ran too, on writer, which must not be held by the calling goroutine
// (SQLite's writer has one connection).
func (w *writeStmts) prepare(writer *sql.DB, texts []string) {
	for _, q := range texts {
		w.mu.Lock()
		_, tried := w.m[q]
		again := w.seen[q]
		if w.m == nil {
			w.m, w.seen = map[string]*sql.Stmt{}, map[string]bool{}
		}
		if tried || len(w.m) >= maxWriteStmts || !again {
			if !tried && len(w.seen) < maxWriteStmts {
				w.seen[q] = true
			}
			w.mu.Unlock()
			continue
		}
		// Claim q (nil until prepared) so concurrent callers skip it.
		w.m[q] = nil
		delete(w.seen, q)
		w.mu.Unlock()
		st, err := writer.PrepareContext(context.Background(), q)
		if err != nil {
			continue
		}
		w.mu.Lock()
		if w.m == nil { // closed meanwhile
			st.Close()
		} else {
			w.m[q] = st
		}
		w.mu.Unlock()
	}
}

// close closes every prepared statement.
func (w *writeStmts) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []error
	for _, st := range w.m {
		if st != nil {
			out = append(out, st.Close())
		}
	}
	w.m, w.seen = nil, nil
	return errors.Join(out...)
}
