// Package user holds accounts and community membership: who a person is
// (one account per installation: unique email and username, compared
// case-insensitively; an ObjectId _id and a numeric id) and which
// communities they belong to, with what access level.
package user

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"strconv"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
)

// User is an account.
type User struct {
	ID            string
	NumID         int64
	Email         string
	Username      string
	FirstName     string
	LastName      string
	DisplayName   string
	Avatar        *string
	Language      string
	PasswordHash  string
	EmailVerified bool
	// TokenKey is mixed into the user's session-token signing key; rotating
	// it revokes every token the user holds.
	TokenKey    string
	LastLoginAt *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Member is a user's membership of one community.
type Member struct {
	CommunityID  string
	UserID       string
	AccessLevel  int
	Joined       bool
	IsOwner      bool
	JoinedAt     *time.Time
	DeletedAt    *time.Time
	VisitCount   int
	LastVisitDay string
	LastSeenAt   *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Deps are what the user store needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
}

// Store reads and writes accounts and memberships.
type Store struct {
	d Deps
}

// NewStore returns the account and membership store.
func NewStore(d Deps) *Store { return &Store{d: d} }

// NewAccount is an account to create.
type NewAccount struct {
	Email        string
	Username     string
	FirstName    string
	LastName     string
	DisplayName  string
	PasswordHash string
	// EmailVerified is true when the partner vouches for the address
	// (accounts created by a partner key or Secure Auth).
	EmailVerified bool
}

// Key folds an email or username into the form uniqueness is checked in.
func Key(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// NewTokenKey returns a fresh random session-token key.
func NewTokenKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CreateAccountTx inserts an account in tx. A taken email or username is a
// Conflict naming the field.
func (s *Store) CreateAccountTx(ctx context.Context, tx *db.Tx, n NewAccount) (User, error) {
	now := s.d.Clock.Now()
	u := User{
		ID: id.New(now), Email: strings.TrimSpace(n.Email), Username: strings.TrimSpace(n.Username),
		FirstName: n.FirstName, LastName: n.LastName, DisplayName: n.DisplayName, Language: "English",
		PasswordHash: n.PasswordHash, EmailVerified: n.EmailVerified, TokenKey: NewTokenKey(),
		CreatedAt: now, UpdatedAt: now,
	}
	var hash *string
	if n.PasswordHash != "" {
		hash = &n.PasswordHash
	}
	err := tx.QueryRow(ctx, `INSERT INTO users (id, email, email_key, username, username_key, firstname, lastname, displayname,
		language, password_hash, email_verified, token_key, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		u.ID, u.Email, Key(u.Email), u.Username, Key(u.Username), u.FirstName, u.LastName, u.DisplayName, u.Language,
		hash, u.EmailVerified, u.TokenKey, now.UnixMilli(), now.UnixMilli()).Scan(&u.NumID)
	switch {
	case db.UniqueViolationOn(err, "email_key"):
		return User{}, &errs.Error{Kind: errs.Conflict, Message: "A user with this email already exists.",
			Fields: []errs.FieldError{{Field: "email", Message: "is already taken"}}}
	case db.UniqueViolationOn(err, "username_key"):
		return User{}, &errs.Error{Kind: errs.Conflict, Message: "A user with this username already exists.",
			Fields: []errs.FieldError{{Field: "username", Message: "is already taken"}}}
	case err != nil:
		return User{}, fmt.Errorf("insert user: %w", err)
	}
	return u, nil
}

// MemberOptions describe a new membership.
type MemberOptions struct {
	AccessLevel int
	// Joined makes the user a full member at once (joinServer); otherwise
	// the membership waits until the user joins.
	Joined bool
	Owner  bool
}

// AddMemberTx makes u a member of community in tx (or updates a pending
// membership). Joining emits user.joined.
func (s *Store) AddMemberTx(ctx context.Context, tx *db.Tx, communityID string, u User, o MemberOptions) (Member, error) {
	now := s.d.Clock.Now()
	m := Member{CommunityID: communityID, UserID: u.ID, AccessLevel: o.AccessLevel, Joined: o.Joined, IsOwner: o.Owner,
		CreatedAt: now, UpdatedAt: now}
	var joinedAt *int64
	if o.Joined {
		ms := now.UnixMilli()
		joinedAt = &ms
		m.JoinedAt = &now
	}
	_, err := tx.Exec(ctx, `INSERT INTO members (community_id, user_id, access_level, joined, is_owner, joined_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, communityID, u.ID, o.AccessLevel, o.Joined, o.Owner, joinedAt, now.UnixMilli(), now.UnixMilli())
	if db.IsUniqueViolation(err) {
		return Member{}, errs.Conflictf("The user is already a member of this community.")
	}
	if err != nil {
		return Member{}, fmt.Errorf("insert member: %w", err)
	}
	if o.Joined {
		if err := s.d.Events.Append(ctx, tx, communityID, "user.joined", JoinedEvent(u, m)); err != nil {
			return Member{}, err
		}
	}
	return m, nil
}

// JoinedEvent is the payload of user.joined (the "User join server" event).
func JoinedEvent(u User, m Member) map[string]any {
	return map[string]any{
		"userId": u.ID, "id": u.NumID, "username": u.Username, "email": u.Email, "displayName": u.DisplayName,
		"firstName": u.FirstName, "lastName": u.LastName, "communityId": m.CommunityID,
		"joinedAt": clock.Format(*m.JoinedAt),
	}
}

const userColumns = `id, seq, email, username, firstname, lastname, displayname, avatar, language, password_hash,
	email_verified, token_key, last_login_at, created_at, updated_at`

// scanUser reads one row of userColumns.
func scanUser(r interface{ Scan(...any) error }) (User, error) {
	var (
		u                User
		avatar, hash     sql.NullString
		lastLogin        sql.NullInt64
		created, updated int64
	)
	err := r.Scan(&u.ID, &u.NumID, &u.Email, &u.Username, &u.FirstName, &u.LastName, &u.DisplayName, &avatar, &u.Language,
		&hash, &u.EmailVerified, &u.TokenKey, &lastLogin, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, errs.NotFoundf("User not found.")
	}
	if err != nil {
		return User{}, fmt.Errorf("scan user: %w", err)
	}
	if avatar.Valid {
		u.Avatar = &avatar.String
	}
	u.PasswordHash = hash.String
	if lastLogin.Valid {
		t := time.UnixMilli(lastLogin.Int64).UTC()
		u.LastLoginAt = &t
	}
	u.CreatedAt, u.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return u, nil
}

// Get returns the account with _id userID.
func (s *Store) Get(ctx context.Context, userID string) (User, error) {
	return scanUser(s.d.DB.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", userID))
}

// GetMany returns the accounts among userIDs that exist, by _id, in one
// query (lists that show many members use it).
func (s *Store) GetMany(ctx context.Context, userIDs []string) (map[string]User, error) {
	out := make(map[string]User, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(userIDs))
	for i, id := range userIDs {
		args[i] = id
	}
	rows, err := s.d.DB.Query(ctx, "SELECT "+userColumns+" FROM users WHERE id IN "+db.In(len(userIDs)), args...)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out[u.ID] = u
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	return out, nil
}

// GetTx returns the account with _id userID, read in tx.
func (s *Store) GetTx(ctx context.Context, tx *db.Tx, userID string) (User, error) {
	return scanUser(tx.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", userID))
}

// Identifier kinds a caller may name a user by.
const (
	ByAny      = ""
	ByID       = "id"
	ByObjectID = "_id"
	ByEmail    = "email"
	ByUsername = "username"
)

// Find returns the account named by identifier: with kind ByAny, a 24-hex
// ObjectId, a numeric id, an email (contains @) or a username, in that order.
func (s *Store) Find(ctx context.Context, identifier, kind string) (User, error) {
	identifier = strings.TrimSpace(identifier)
	if identifier == "" {
		return User{}, errs.NotFoundf("User not found.")
	}
	q := "SELECT " + userColumns + " FROM users WHERE "
	switch kind {
	case ByObjectID:
		return scanUser(s.d.DB.QueryRow(ctx, q+"id = ?", identifier))
	case ByID:
		n, err := strconv.ParseInt(identifier, 10, 64)
		if err != nil {
			return User{}, errs.NotFoundf("User not found.")
		}
		return scanUser(s.d.DB.QueryRow(ctx, q+"seq = ?", n))
	case ByEmail:
		return scanUser(s.d.DB.QueryRow(ctx, q+"email_key = ?", Key(identifier)))
	case ByUsername:
		return scanUser(s.d.DB.QueryRow(ctx, q+"username_key = ?", Key(identifier)))
	case ByAny:
		if id.Valid(identifier) {
			if u, err := s.Find(ctx, strings.ToLower(identifier), ByObjectID); err == nil || errs.KindOf(err) != errs.NotFound {
				return u, err
			}
		}
		if _, err := strconv.ParseInt(identifier, 10, 64); err == nil {
			if u, err := s.Find(ctx, identifier, ByID); err == nil || errs.KindOf(err) != errs.NotFound {
				return u, err
			}
		}
		if strings.Contains(identifier, "@") {
			return s.Find(ctx, identifier, ByEmail)
		}
		return s.Find(ctx, identifier, ByUsername)
	}
	return User{}, errs.New(errs.Invalid, "Unknown identifier type %q.", kind)
}

const memberColumns = `community_id, user_id, access_level, joined, is_owner, joined_at, deleted_at, visit_count,
	last_visit_day, last_seen_at, created_at, updated_at`

func scanMember(r interface{ Scan(...any) error }) (Member, error) {
	var (
		m                         Member
		joined, deleted, lastSeen sql.NullInt64
		lastVisit                 sql.NullString
		created, updated          int64
	)
	err := r.Scan(&m.CommunityID, &m.UserID, &m.AccessLevel, &m.Joined, &m.IsOwner, &joined, &deleted, &m.VisitCount,
		&lastVisit, &lastSeen, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, errs.NotFoundf("User not found.")
	}
	if err != nil {
		return Member{}, fmt.Errorf("scan member: %w", err)
	}
	m.JoinedAt, m.DeletedAt, m.LastSeenAt = millisPtr(joined), millisPtr(deleted), millisPtr(lastSeen)
	m.LastVisitDay = lastVisit.String
	m.CreatedAt, m.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return m, nil
}

func millisPtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMilli(v.Int64).UTC()
	return &t
}

// Member returns u's membership of community, deleted or not. A user who
// is not a member is NotFound, so callers cannot tell other communities'
// users from unknown ones.
func (s *Store) Member(ctx context.Context, communityID, userID string) (Member, error) {
	return scanMember(s.d.DB.QueryRow(ctx, "SELECT "+memberColumns+" FROM members WHERE community_id = ? AND user_id = ?",
		communityID, userID))
}

// MemberTx is Member read inside tx, locking the row on PostgreSQL.
func (s *Store) MemberTx(ctx context.Context, tx *db.Tx, communityID, userID string) (Member, error) {
	return scanMember(tx.QueryRow(ctx, "SELECT "+memberColumns+" FROM members WHERE community_id = ? AND user_id = ?"+tx.DB().ForUpdate(),
		communityID, userID))
}

// FindMember resolves identifier (see Find) to a live member of community:
// unknown users, users of other communities and deleted members are all
// NotFound.
func (s *Store) FindMember(ctx context.Context, communityID, identifier, kind string) (User, Member, error) {
	u, err := s.Find(ctx, identifier, kind)
	if err != nil {
		return User{}, Member{}, err
	}
	m, err := s.Member(ctx, communityID, u.ID)
	if err != nil {
		return User{}, Member{}, err
	}
	if m.DeletedAt != nil {
		return User{}, Member{}, errs.NotFoundf("User not found.")
	}
	return u, m, nil
}

// RecordVisit counts a member's visit (signing in, opening the community):
// at most once per UTC day it raises the visit count and emits user.visited.
// It reports whether this was the day's first visit.
func (s *Store) RecordVisit(ctx context.Context, communityID, userID string) (bool, error) {
	first := false
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		m, err := s.MemberTx(ctx, tx, communityID, userID)
		if err != nil {
			return err
		}
		now := s.d.Clock.Now()
		day := now.Format("2006-01-02")
		if m.LastVisitDay == day {
			_, err := tx.Exec(ctx, "UPDATE members SET last_seen_at = ? WHERE community_id = ? AND user_id = ?",
				now.UnixMilli(), communityID, userID)
			return err
		}
		first = true
		if _, err := tx.Exec(ctx, `UPDATE members SET visit_count = visit_count + 1, last_visit_day = ?, last_seen_at = ?, updated_at = ?
			WHERE community_id = ? AND user_id = ?`, day, now.UnixMilli(), now.UnixMilli(), communityID, userID); err != nil {
			return fmt.Errorf("record visit: %w", err)
		}
		u, err := s.GetTx(ctx, tx, userID)
		if err != nil {
			return err
		}
		return s.d.Events.Append(ctx, tx, communityID, "user.visited", map[string]any{
			"userId": u.ID, "id": u.NumID, "username": u.Username, "email": u.Email, "communityId": communityID,
			"visitCount": m.VisitCount + 1, "visitedAt": clock.Format(now),
		})
	})
	return first, err
}
