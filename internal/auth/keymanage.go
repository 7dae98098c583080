package auth

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// KeyScope names the keys a caller may manage: a community's partner keys
// (Kind KindPartner, CommunityID) or a user's own keys (Kind KindUser,
// UserID). A key outside the scope is NotFound.
type KeyScope struct {
	Kind        string
	CommunityID string
	UserID      string
}

func (sc KeyScope) where() (string, []any) {
	if sc.Kind == KindUser {
		return "kind = ? AND user_id = ?", []any{KindUser, sc.UserID}
	}
	return "kind = ? AND community_id = ?", []any{KindPartner, sc.CommunityID}
}

func (sc KeyScope) canonical() func(string) (string, bool) {
	if sc.Kind == KindUser {
		return CanonicalUserPermission
	}
	return CanonicalPermission
}

// KeyInput is a key as a client sends it to create or update: on update an
// absent field is left unchanged. expireDate ("" or null: never) wins over
// expirePeriod (days from now; 0: never) when both are sent.
type KeyInput struct {
	Name         jsonx.Optional[string]   `json:"name"`
	Permissions  jsonx.Optional[[]string] `json:"permissions"`
	ExpirePeriod jsonx.Optional[int]      `json:"expirePeriod"`
	ExpireDate   jsonx.Optional[string]   `json:"expireDate"`
	IsActive     jsonx.Optional[bool]     `json:"isActive"`
	// ChannelIDs limits a user key to some channels (user keys only).
	ChannelIDs jsonx.Optional[[]string] `json:"channelIds"`
	// CommunityID is the community a new user key acts in (user keys only;
	// partner keys belong to the path's community).
	CommunityID string `json:"communityId"`
}

// validate checks in for scope sc and returns the expiry it asks for:
// set reports whether the expiry changes, at is nil for "never".
func (in *KeyInput) validate(v *errs.Validator, sc KeyScope, now time.Time, create bool) (set bool, at *time.Time) {
	if in.Name.Set || create {
		in.Name.Value = strings.TrimSpace(in.Name.Value)
		v.Check(!in.Name.Null && in.Name.Value != "" && len(in.Name.Value) <= 100, "name", "must be 1 to 100 characters")
	}
	if in.Permissions.Set {
		in.Permissions.Value = canonicalList(v, in.Permissions.Value, sc.canonical())
	}
	if in.ExpirePeriod.Set {
		p := in.ExpirePeriod.Value
		v.Check(!in.ExpirePeriod.Null && p >= 0 && p <= maxExpireDays, "expirePeriod", "must be between 0 (never) and %d days", maxExpireDays)
		set = true
		if p > 0 {
			t := now.AddDate(0, 0, p)
			at = &t
		}
	}
	if in.ExpireDate.Set {
		if raw := strings.TrimSpace(in.ExpireDate.Value); raw != "" {
			t, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil || !t.After(now) {
				v.Add("expireDate", "must be an ISO 8601 date-time in the future, or empty for none")
			} else {
				t = t.UTC()
				at, set = &t, true
			}
		} else if !in.ExpirePeriod.Set {
			at, set = nil, true
		}
	}
	if in.ChannelIDs.Set {
		if sc.Kind != KindUser {
			v.Add("channelIds", "only user API keys can be limited to channels")
		}
		in.ChannelIDs.Value = normaliseIDs(v, "channelIds", in.ChannelIDs.Value)
	}
	if create && sc.Kind == KindUser {
		v.Check(id.Valid(in.CommunityID), "communityId", "must be the 24-hex id of a community you belong to")
		in.CommunityID = strings.ToLower(in.CommunityID)
	}
	return set, at
}

// normaliseIDs lowercases ObjectIds, drops duplicates and names bad ones.
func normaliseIDs(v *errs.Validator, field string, ids []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, s := range ids {
		s = strings.ToLower(strings.TrimSpace(s))
		if !id.Valid(s) {
			v.Add(field, "%q is not a 24-hex id", s)
			continue
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// CreateScoped creates a key of scope sc from a client's input and returns
// it with its secret, shown once. For user keys the caller has checked that
// sc.UserID is a live member of in.CommunityID.
func (s *Keys) CreateScoped(ctx context.Context, sc KeyScope, in KeyInput) (k Key, secret string, err error) {
	var v errs.Validator
	now := s.d.Clock.Now()
	_, at := in.validate(&v, sc, now, true)
	if err := v.Err(); err != nil {
		return Key{}, "", err
	}
	n := NewKey{CommunityID: sc.CommunityID, Name: in.Name.Value, Permissions: in.Permissions.Value, ExpireDays: in.ExpirePeriod.Value,
		ExpireAt: at, UserID: sc.UserID, ChannelIDs: in.ChannelIDs.Value, Inactive: in.IsActive.Set && !in.IsActive.Value}
	if sc.Kind == KindUser {
		n.CommunityID = in.CommunityID
	}
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		k, secret, err = s.insert(ctx, tx, sc.Kind, n)
		if err != nil {
			return err
		}
		return s.d.Events.Append(ctx, tx, k.CommunityID, "apikey.created", keyEvent(k))
	})
	return k, secret, err
}

// ListScoped returns a page of the keys in scope sc, newest first, and how
// many there are.
func (s *Keys) ListScoped(ctx context.Context, sc KeyScope, skip, limit int) ([]Key, int, error) {
	where, args := sc.where()
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM api_keys WHERE "+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count api keys: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE "+where+" ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
		append(args, limit, skip)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	out := []Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, k)
	}
	return out, total, rows.Err()
}

// getScopedTx reads key keyID of scope sc in tx (locking it on PostgreSQL).
func (s *Keys) getScopedTx(ctx context.Context, tx *db.Tx, sc KeyScope, keyID string) (Key, error) {
	where, args := sc.where()
	k, err := scanKey(tx.QueryRow(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE id = ? AND "+where+tx.DB().ForUpdate(),
		append([]any{strings.ToLower(keyID)}, args...)...))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, errs.NotFoundf("API key not found.")
	}
	return k, err
}

// UpdateScoped applies a partial update to key keyID of scope sc. It emits
// apikey.updated, or apikey.revoked when the update deactivates the key.
func (s *Keys) UpdateScoped(ctx context.Context, sc KeyScope, keyID string, in KeyInput) (Key, error) {
	var v errs.Validator
	now := s.d.Clock.Now()
	expSet, at := in.validate(&v, sc, now, false)
	if err := v.Err(); err != nil {
		return Key{}, err
	}
	var k Key
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if k, err = s.getScopedTx(ctx, tx, sc, keyID); err != nil {
			return err
		}
		wasActive := k.IsActive
		if in.Name.Set {
			k.Name = in.Name.Value
		}
		if in.Permissions.Set {
			k.Permissions = in.Permissions.Value
		}
		if in.ExpirePeriod.Set {
			k.ExpirePeriod = in.ExpirePeriod.Value
		}
		if expSet {
			k.ExpireDate = at
			if at == nil {
				k.ExpirePeriod = 0
			}
		}
		if in.IsActive.Set && !in.IsActive.Null {
			k.IsActive = in.IsActive.Value
		}
		if in.ChannelIDs.Set {
			k.ChannelIDs = in.ChannelIDs.Value
		}
		k.UpdatedAt = now
		perms, _ := json.Marshal(k.Permissions)
		channels, _ := json.Marshal(k.ChannelIDs)
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET name = ?, permissions = ?, expire_period = ?, expire_at = ?, is_active = ?,
			channel_ids = ?, updated_at = ? WHERE id = ?`, k.Name, string(perms), k.ExpirePeriod, millis(k.ExpireDate), k.IsActive,
			string(channels), now.UnixMilli(), k.ID); err != nil {
			return fmt.Errorf("update api key: %w", err)
		}
		typ := "apikey.updated"
		if wasActive && !k.IsActive {
			typ = "apikey.revoked"
		}
		return s.d.Events.Append(ctx, tx, k.CommunityID, typ, keyEvent(k))
	})
	s.forget()
	return k, err
}

// DeleteScoped deletes key keyID of scope sc for good: it stops working at
// once. It returns the deleted key and emits apikey.deleted.
func (s *Keys) DeleteScoped(ctx context.Context, sc KeyScope, keyID string) (Key, error) {
	var k Key
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if k, err = s.getScopedTx(ctx, tx, sc, keyID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM api_keys WHERE id = ?", k.ID); err != nil {
			return fmt.Errorf("delete api key: %w", err)
		}
		return s.d.Events.Append(ctx, tx, k.CommunityID, "apikey.deleted", keyEvent(k))
	})
	s.forget()
	return k, err
}
