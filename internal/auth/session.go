package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/user"
)

// Community grants a signed-in user can hold, as the Application API names
// them: the owner, an administrator (a role with server_administrator), and
// any live member.
const (
	GrantOwner  = "COMMUNITY_OWNER"
	GrantAdmin  = "COMMUNITY_ADMIN"
	GrantMember = "APPLICATION_MEMBER"
)

// SessionLifetime is how long a session token is valid (the docs' sample
// token lives 7 days).
const SessionLifetime = 7 * 24 * time.Hour

// Session is a verified user session token: who signed in, through which
// community, and when it ends.
type Session struct {
	UserID string
	NumID  int64
	// CommunityID is the community the user signed in through.
	CommunityID string
	// TokenID is the token's jti, the handle single sign-out revokes.
	TokenID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// SessionDeps are what the session-token service needs.
type SessionDeps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
}

// Sessions issues and verifies session tokens: HS256 JWTs with the claims
// `_id` (user ObjectId), `id` (numeric id as a string), `cid` (community
// signed in through), `iat`, `exp` and `jti`. Each user's tokens are signed
// with HMAC-SHA256(installation secret, users.token_key), so rotating the
// token key revokes all of them at once; single sign-out lists the jti in
// revoked_tokens until the token would have expired. Verifying is a read:
// no write per request.
type Sessions struct {
	d      SessionDeps
	secret []byte
}

// sessionSecretSetting names the installation secret in settings.
const sessionSecretSetting = "session_secret"

// NewSessions loads the installation's signing secret, creating it on first
// start (every node of an installation shares it through the database).
func NewSessions(ctx context.Context, d SessionDeps) (*Sessions, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("session secret: %w", err)
	}
	if _, err := d.DB.Exec(ctx, "INSERT INTO settings (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
		sessionSecretSetting, hex.EncodeToString(b[:]), d.Clock.Now().UnixMilli()); err != nil {
		return nil, fmt.Errorf("session secret: store: %w", err)
	}
	var stored string
	if err := d.DB.Writer.QueryRowContext(ctx, d.DB.Rebind("SELECT value FROM settings WHERE name = ?"), sessionSecretSetting).Scan(&stored); err != nil {
		return nil, fmt.Errorf("session secret: load: %w", err)
	}
	secret, err := hex.DecodeString(stored)
	if err != nil || len(secret) < 32 {
		return nil, errors.New("session secret: stored value is malformed")
	}
	return &Sessions{d: d, secret: secret}, nil
}

// mac is HMAC-SHA256 under the installation secret.
func (s *Sessions) mac(parts ...string) []byte {
	h := hmac.New(sha256.New, s.secret)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// signingKey is the user's token-signing key.
func (s *Sessions) signingKey(tokenKey string) []byte { return s.mac("session", tokenKey) }

type tokenClaims struct {
	UserID      string `json:"_id"`
	NumID       string `json:"id"`
	CommunityID string `json:"cid,omitempty"`
	jwt.RegisteredClaims
}

// NewTokenID returns a fresh random token id (jti).
func NewTokenID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Issue signs a session token for u, signed in through communityID. jti ""
// picks a fresh token id.
func (s *Sessions) Issue(u user.User, communityID, jti string) (string, Session, error) {
	if jti == "" {
		jti = NewTokenID()
	}
	now := s.d.Clock.Now().Truncate(time.Second)
	sess := Session{UserID: u.ID, NumID: u.NumID, CommunityID: communityID, TokenID: jti, IssuedAt: now, ExpiresAt: now.Add(SessionLifetime)}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, tokenClaims{
		UserID: u.ID, NumID: strconv.FormatInt(u.NumID, 10), CommunityID: communityID,
		RegisteredClaims: jwt.RegisteredClaims{ID: jti, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(sess.ExpiresAt)},
	})
	signed, err := t.SignedString(s.signingKey(u.TokenKey))
	if err != nil {
		return "", Session{}, fmt.Errorf("sign session token: %w", err)
	}
	return signed, sess, nil
}

// Authenticate verifies a session token: signature, expiry, the user still
// existing and the token not signed out. Every failure is Unauthenticated.
func (s *Sessions) Authenticate(ctx context.Context, token string) (Session, error) {
	var (
		c       tokenClaims
		seq     int64
		revoked int
		dbErr   error
	)
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		var key string
		err := s.d.DB.QueryRow(ctx, `SELECT u.seq, u.token_key, (SELECT COUNT(*) FROM revoked_tokens r WHERE r.jti = ?)
			FROM users u WHERE u.id = ?`, c.ID, c.UserID).Scan(&seq, &key, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errors.New("unknown user")
		}
		if err != nil {
			dbErr = fmt.Errorf("read session user: %w", err)
			return nil, dbErr
		}
		return s.signingKey(key), nil
	}, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithTimeFunc(s.d.Clock.Now),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	switch {
	case dbErr != nil:
		return Session{}, dbErr
	case errors.Is(err, jwt.ErrTokenExpired):
		return Session{}, errs.Unauthenticatedf("Session token has expired; sign in again.")
	case err != nil, c.ID == "", c.IssuedAt == nil, c.NumID != strconv.FormatInt(seq, 10):
		return Session{}, errs.Unauthenticatedf("Invalid session token.")
	case revoked > 0:
		return Session{}, errs.Unauthenticatedf("Session token has been signed out.")
	}
	return Session{UserID: c.UserID, NumID: seq, CommunityID: c.CommunityID, TokenID: c.ID,
		IssuedAt: c.IssuedAt.UTC(), ExpiresAt: c.ExpiresAt.UTC()}, nil
}

// Revoke signs out one session: its token fails from now on.
func (s *Sessions) Revoke(ctx context.Context, sess Session) error {
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING",
			sess.TokenID, sess.UserID, sess.ExpiresAt.UnixMilli()); err != nil {
			return fmt.Errorf("revoke session: %w", err)
		}
		return s.revokedEvent(ctx, tx, sess, false)
	})
}

// RevokeAll signs the user out everywhere by rotating their token key.
func (s *Sessions) RevokeAll(ctx context.Context, sess Session) error {
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE users SET token_key = ?, updated_at = ? WHERE id = ?",
			user.NewTokenKey(), s.d.Clock.Now().UnixMilli(), sess.UserID); err != nil {
			return fmt.Errorf("revoke all sessions: %w", err)
		}
		return s.revokedEvent(ctx, tx, sess, true)
	})
}

func (s *Sessions) revokedEvent(ctx context.Context, tx *db.Tx, sess Session, all bool) error {
	if sess.CommunityID == "" {
		return nil
	}
	return s.d.Events.Append(ctx, tx, sess.CommunityID, "session.revoked", map[string]any{
		"userId": sess.UserID, "sessionId": sess.TokenID, "all": all,
	})
}
