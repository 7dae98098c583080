package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
)

// Key kinds.
const (
	// KindPartner is a community's partner API key.
	KindPartner = "partner"
	// KindPlatform is the installation's platform-admin key (no community).
	KindPlatform = "platform"
	// KindUser is a user API key: it acts as its owner inside one community.
	KindUser = "user"
)

// Key is a stored API key; the secret itself is never kept.
type Key struct {
	ID           string
	CommunityID  string
	Kind         string
	Name         string
	Prefix       string
	Permissions  []string
	ExpirePeriod int
	ExpireDate   *time.Time
	IsActive     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastUsedAt   *time.Time
	// UserID is the owner of a user key ("" for other kinds).
	UserID string
	// ChannelIDs limits a user key to these channels (empty: every channel).
	ChannelIDs []string
}

// Has reports whether the key holds permission p (aliases resolved).
func (k Key) Has(p string) bool {
	p, _ = CanonicalPermission(p)
	return slices.Contains(k.Permissions, p)
}

// Deps are what the key service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
}

// Keys creates, finds and revokes API keys.
type Keys struct {
	d Deps
	// cache holds recently authenticated keys by secret hash, so the hot
	// path does not read the database on every request. Any change to a key
	// on this node clears it; other nodes see a change within cacheTTL.
	// Only keys found in the database are kept.
	mu    sync.RWMutex
	cache map[[sha256.Size]byte]cachedKey
}

type cachedKey struct {
	key      Key
	loadedAt time.Time
}

// cacheTTL bounds how long a key read from the database is trusted without
// reading it again (the longest a revocation made on another node takes to
// take effect here).
const cacheTTL = time.Second

// NewKeys returns the key service.
func NewKeys(d Deps) *Keys { return &Keys{d: d, cache: map[[sha256.Size]byte]cachedKey{}} }

// forget drops every cached key; called after any key changes.
func (s *Keys) forget() {
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
}

// cached returns the key cached under sum, if any.
func (s *Keys) cached(sum [sha256.Size]byte) (cachedKey, bool) {
	s.mu.RLock()
	v, ok := s.cache[sum]
	s.mu.RUnlock()
	return v, ok
}

// remember caches k under sum.
func (s *Keys) remember(sum [sha256.Size]byte, k Key, loadedAt time.Time) {
	s.mu.Lock()
	s.cache[sum] = cachedKey{key: k, loadedAt: loadedAt}
	s.mu.Unlock()
}

// NewKey describes a key to create.
type NewKey struct {
	CommunityID string
	Name        string
	Permissions []string
	// ExpireDays is the lifetime in days; 0 means the key never expires.
	ExpireDays int
	// ExpireAt, when set, is the expiry instead of ExpireDays from now.
	ExpireAt *time.Time
	// UserID owns a user key.
	UserID string
	// ChannelIDs limits a user key to some channels.
	ChannelIDs []string
	// Inactive creates the key disabled.
	Inactive bool
}

// lastUsedEvery bounds how often a key's last-used time is written, so
// authenticating stays a read on the hot path.
const lastUsedEvery = time.Minute

// maxExpireDays bounds a key's lifetime (ten years).
const maxExpireDays = 3650

// ValidateNewKey checks a partner key request, naming every offending field.
func ValidateNewKey(n *NewKey) error {
	var v errs.Validator
	validateNewKey(&v, n, CanonicalPermission)
	return v.Err()
}

func validateNewKey(v *errs.Validator, n *NewKey, canonical func(string) (string, bool)) {
	n.Name = strings.TrimSpace(n.Name)
	v.Check(n.Name != "" && len(n.Name) <= 100, "name", "must be 1 to 100 characters")
	v.Check(n.ExpireDays >= 0 && n.ExpireDays <= maxExpireDays, "expirePeriod", "must be between 0 (never) and %d days", maxExpireDays)
	n.Permissions = canonicalList(v, n.Permissions, canonical)
}

// canonicalList resolves permission identifiers, dropping duplicates and
// naming unknown ones.
func canonicalList(v *errs.Validator, in []string, canonical func(string) (string, bool)) []string {
	seen := map[string]bool{}
	perms := []string{}
	for _, p := range in {
		c, ok := canonical(strings.TrimSpace(p))
		if !ok {
			v.Add("permissions", "unknown permission %q", p)
			continue
		}
		if !seen[c] {
			seen[c] = true
			perms = append(perms, c)
		}
	}
	return perms
}

// CreateTx creates a partner key inside tx and returns it with its secret,
// which is shown once and never stored.
func (s *Keys) CreateTx(ctx context.Context, tx *db.Tx, n NewKey) (Key, string, error) {
	if err := ValidateNewKey(&n); err != nil {
		return Key{}, "", err
	}
	k, secret, err := s.insert(ctx, tx, KindPartner, n)
	if err != nil {
		return Key{}, "", err
	}
	if err := s.d.Events.Append(ctx, tx, n.CommunityID, "apikey.created", keyEvent(k)); err != nil {
		return Key{}, "", err
	}
	return k, secret, nil
}

// Create creates a partner key in its own transaction.
func (s *Keys) Create(ctx context.Context, n NewKey) (k Key, secret string, err error) {
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var exists int
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM communities WHERE id = ?", n.CommunityID).Scan(&exists); err != nil {
			return fmt.Errorf("find community: %w", err)
		}
		if exists == 0 {
			return errs.NotFoundf("Community not found.")
		}
		k, secret, err = s.CreateTx(ctx, tx, n)
		return err
	})
	return k, secret, err
}

func (s *Keys) insert(ctx context.Context, tx *db.Tx, kind string, n NewKey) (Key, string, error) {
	secret, err := newSecret()
	if err != nil {
		return Key{}, "", err
	}
	now := s.d.Clock.Now()
	k := Key{
		ID: id.New(now), CommunityID: n.CommunityID, Kind: kind, Name: n.Name, Prefix: secret[:8],
		Permissions: n.Permissions, ExpirePeriod: n.ExpireDays, IsActive: !n.Inactive,
		CreatedAt: now, UpdatedAt: now, UserID: n.UserID, ChannelIDs: n.ChannelIDs,
	}
	if k.Permissions == nil {
		k.Permissions = []string{}
	}
	if k.ChannelIDs == nil {
		k.ChannelIDs = []string{}
	}
	switch {
	case n.ExpireAt != nil:
		t := n.ExpireAt.UTC()
		k.ExpireDate = &t
	case n.ExpireDays > 0:
		t := now.AddDate(0, 0, n.ExpireDays)
		k.ExpireDate = &t
	}
	perms, _ := json.Marshal(k.Permissions)
	channels, _ := json.Marshal(k.ChannelIDs)
	_, err = tx.Exec(ctx, `INSERT INTO api_keys (id, community_id, kind, name, key_hash, key_prefix, permissions,
		expire_period, expire_at, is_active, created_at, updated_at, user_id, channel_ids)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, nullable(n.CommunityID), kind, k.Name, hashSecret(secret), k.Prefix, string(perms), n.ExpireDays,
		millis(k.ExpireDate), k.IsActive, now.UnixMilli(), now.UnixMilli(), nullable(n.UserID), string(channels))
	if err != nil {
		return Key{}, "", fmt.Errorf("insert api key: %w", err)
	}
	return k, secret, nil
}

// EnsurePlatformKey creates the installation's platform-admin key when none
// exists. created is false (and secret empty) when one already exists.
func (s *Keys) EnsurePlatformKey(ctx context.Context) (secret string, created bool, err error) {
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := tx.Lock(ctx, "platform-key"); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM api_keys WHERE kind = ?", KindPlatform).Scan(&n); err != nil {
			return fmt.Errorf("count platform keys: %w", err)
		}
		if n > 0 {
			return nil
		}
		_, secret, err = s.insert(ctx, tx, KindPlatform, NewKey{Name: "platform-admin", Permissions: []string{}})
		created = err == nil
		return err
	})
	return secret, created, err
}

// List returns a community's partner keys, newest first.
func (s *Keys) List(ctx context.Context, communityID string) ([]Key, error) {
	rows, err := s.d.DB.Query(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE community_id = ? AND kind = ? ORDER BY created_at DESC, id DESC",
		communityID, KindPartner)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Revoke deactivates a community's key; revoking twice is not an error.
func (s *Keys) Revoke(ctx context.Context, communityID, keyID string) (Key, error) {
	var k Key
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		now := s.d.Clock.Now()
		res, err := tx.Exec(ctx, "UPDATE api_keys SET is_active = ?, updated_at = ? WHERE id = ? AND community_id = ? AND kind = ?",
			false, now.UnixMilli(), keyID, communityID, KindPartner)
		if err != nil {
			return fmt.Errorf("revoke api key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.NotFoundf("API key not found.")
		}
		k, err = scanKey(tx.QueryRow(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE id = ?", keyID))
		if err != nil {
			return err
		}
		return s.d.Events.Append(ctx, tx, communityID, "apikey.revoked", keyEvent(k))
	})
	s.forget()
	return k, err
}

// Authenticate finds the active, unexpired key whose secret is given.
// Every failure is Unauthenticated with a message that reveals nothing
// about other keys.
func (s *Keys) Authenticate(ctx context.Context, secret string) (Key, error) {
	if !LooksLikeKey(secret) {
		return Key{}, errs.Unauthenticatedf("Invalid API key.")
	}
	sum := sumSecret(secret)
	now := s.d.Clock.Now()
	var k Key
	if v, ok := s.cached(sum); ok && now.Sub(v.loadedAt) < cacheTTL && now.Sub(v.loadedAt) >= 0 {
		k = v.key
	} else {
		h := hex.EncodeToString(sum[:])
		var stored string
		row := s.d.DB.QueryRow(ctx, "SELECT key_hash, "+keyColumns+" FROM api_keys WHERE key_hash = ?", h)
		var err error
		k, err = scanKey(row, &stored)
		if errors.Is(err, sql.ErrNoRows) {
			return Key{}, errs.Unauthenticatedf("Invalid API key.")
		}
		if err != nil {
			return Key{}, err
		}
		if subtle.ConstantTimeCompare([]byte(stored), []byte(h)) != 1 {
			return Key{}, errs.Unauthenticatedf("Invalid API key.")
		}
		s.remember(sum, k, now)
	}
	if !k.IsActive {
		return Key{}, errs.Unauthenticatedf("API key is inactive.")
	}
	if k.ExpireDate != nil && !now.Before(*k.ExpireDate) {
		return Key{}, errs.Unauthenticatedf("API key has expired.")
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= lastUsedEvery {
		if _, err := s.d.DB.Exec(ctx, "UPDATE api_keys SET last_used_at = ? WHERE id = ?", now.UnixMilli(), k.ID); err != nil {
			return Key{}, fmt.Errorf("record key use: %w", err)
		}
		k.LastUsedAt = &now
		s.remember(sum, k, now)
	}
	return k, nil
}

// LooksLikeKey reports whether s has the shape of an API key (64 hex).
func LooksLikeKey(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

const keyColumns = "id, community_id, kind, name, key_prefix, permissions, expire_period, expire_at, is_active, created_at, updated_at, last_used_at, user_id, channel_ids"

// nullable stores "" as NULL.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// millis stores a time as Unix milliseconds (nil stays NULL).
func millis(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	ms := t.UnixMilli()
	return &ms
}

type scanner interface{ Scan(...any) error }

func scanKey(r scanner, extra ...any) (Key, error) {
	var (
		k                  Key
		community, owner   sql.NullString
		perms, channels    string
		expireAt, lastUsed sql.NullInt64
		created, updated   int64
	)
	dest := append(extra, &k.ID, &community, &k.Kind, &k.Name, &k.Prefix, &perms, &k.ExpirePeriod, &expireAt,
		&k.IsActive, &created, &updated, &lastUsed, &owner, &channels)
	if err := r.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Key{}, err
		}
		return Key{}, fmt.Errorf("scan api key: %w", err)
	}
	k.CommunityID, k.UserID = community.String, owner.String
	if err := json.Unmarshal([]byte(perms), &k.Permissions); err != nil {
		return Key{}, fmt.Errorf("api key %s permissions: %w", k.ID, err)
	}
	if err := json.Unmarshal([]byte(channels), &k.ChannelIDs); err != nil {
		return Key{}, fmt.Errorf("api key %s channels: %w", k.ID, err)
	}
	k.CreatedAt, k.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	if expireAt.Valid {
		t := time.UnixMilli(expireAt.Int64).UTC()
		k.ExpireDate = &t
	}
	if lastUsed.Valid {
		t := time.UnixMilli(lastUsed.Int64).UTC()
		k.LastUsedAt = &t
	}
	return k, nil
}

func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate api key: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// hashSecret is SHA-256: a key has 256 bits of entropy, so a slow password
// hash would add cost without adding safety.
func hashSecret(secret string) string {
	sum := sumSecret(secret)
	return hex.EncodeToString(sum[:])
}

// sumSecret is hashSecret before hex encoding.
func sumSecret(secret string) [sha256.Size]byte {
	return sha256.Sum256([]byte(strings.ToLower(secret)))
}

// keyEvent is the payload of key events: never the secret or its hash.
func keyEvent(k Key) map[string]any {
	ev := map[string]any{"_id": k.ID, "kind": k.Kind, "name": k.Name, "permissions": k.Permissions, "isActive": k.IsActive}
	if k.UserID != "" {
		ev["userId"] = k.UserID
	}
	return ev
}
