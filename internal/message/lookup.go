package message

import (
	"sync"
	"sync/atomic"
	"time"
)

// Versions reports a community's change version: it rises once a change
// to the community's settings, members, roles or channels commits in this
// process (*event.Outbox implements it).
type Versions interface {
	Version(communityID string) uint64
}

// lookupTTL bounds how long a sender, channel or permission lookup is
// reused: changes made in this process are seen at once (the community's
// version moves), changes made on another node within lookupTTL.
const lookupTTL = time.Second

// maxLookups bounds each lookup cache; a full cache is emptied.
const maxLookups = 50_000

// lookups caches the reads every messaging call starts with, by key, each
// valid while its community's version is the one noted before the read and
// for at most lookupTTL. Failed lookups are never kept.
type lookups[V any] struct {
	m sync.Map // key -> lookup[V]
	n atomic.Int64
}

type lookup[V any] struct {
	v       V
	version uint64
	at      time.Time
}

// get returns key's value when still valid at version and now.
func (l *lookups[V]) get(key string, version uint64, now time.Time) (V, bool) {
	if e, ok := l.m.Load(key); ok {
		e := e.(lookup[V])
		if age := now.Sub(e.at); e.version == version && age >= 0 && age < lookupTTL {
			return e.v, true
		}
	}
	var zero V
	return zero, false
}

// put keeps v for key, read at version (noted before the read) and now.
func (l *lookups[V]) put(key string, v V, version uint64, now time.Time) {
	if l.n.Add(1) > maxLookups {
		l.m.Clear()
		l.n.Store(1)
	}
	l.m.Store(key, lookup[V]{v: v, version: version, at: now})
}

// version returns communityID's change version, and false when lookups
// are not cached (no Versions given).
func (s *Service) version(communityID string) (uint64, bool) {
	if s.d.Versions == nil {
		return 0, false
	}
	return s.d.Versions.Version(communityID), true
}
