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
// unprepared and reports its errors as usual).
type writeStmts struct {
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

// get returns q's statement and whether q was tried.
func (w *writeStmts) get(q string) (*sql.Stmt, bool) {
	w.mu.RLock()
	st, ok := w.m[q]
	w.mu.RUnlock()
	return st, ok
}

// prepare prepares the texts not tried yet on writer, which must not be
// held by the calling goroutine (SQLite's writer has one connection).
func (w *writeStmts) prepare(writer *sql.DB, texts []string) {
	for _, q := range texts {
		w.mu.RLock()
		_, tried := w.m[q]
		full := len(w.m) >= maxWriteStmts
		w.mu.RUnlock()
		if tried || full {
			continue
		}
		st, err := writer.PrepareContext(context.Background(), q)
		if err != nil {
			st = nil
		}
		w.mu.Lock()
		if w.m == nil {
			w.m = map[string]*sql.Stmt{}
		}
		if _, tried := w.m[q]; tried && st != nil {
			st.Close()
		} else if !tried {
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
	w.m = nil
	return errors.Join(out...)
}
