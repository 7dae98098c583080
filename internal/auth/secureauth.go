package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/user"
)

// SecureAuthTTL is how long a Secure Auth login link stays usable.
const SecureAuthTTL = 5 * time.Minute

// maxAccessLevel bounds the Secure Auth accessLevel (the docs show 0, 1, 3).
const maxAccessLevel = 10

// SecureAuthInput is a partner's Secure Auth request: the community host
// (hostname header) and the query parameters.
type SecureAuthInput struct {
	Host        string
	Username    string
	AccessLevel string
	Action      string
	Email       string
	FirstName   string
	LastName    string
	DisplayName string
}

// SecureAuthGrant is an issued login link's parts.
type SecureAuthGrant struct {
	// Token is the one-time secret for the loginUrl (stored only hashed).
	Token string
	// SessionID is the id of the session the link opens (its token's jti).
	SessionID string
	// Host is the community host the link points at (as the partner sent it).
	Host string
	// KeyID is the partner key's public id, used in place of the key in the
	// link's path.
	KeyID     string
	ExpiresAt time.Time
	User      user.User
	// Created is true when the request created the account.
	Created bool
}

// StartSecureAuth is the partner single sign-on: key (a partner key of its
// community) vouches for the user named by Username; an unknown username is
// created (verified, joined) when Email is sent. It returns a single-use
// login link token valid for SecureAuthTTL.
func (a *Accounts) StartSecureAuth(ctx context.Context, key Key, in SecureAuthInput) (SecureAuthGrant, error) {
	var v errs.Validator
	in.Host = strings.TrimSpace(in.Host)
	in.Username, in.Email = strings.TrimSpace(in.Username), strings.TrimSpace(in.Email)
	v.Check(in.Host != "", "hostname", "header is required: the community's host name")
	v.Check(in.Username != "", "userId", "is required: the user's username")
	v.Check(in.Action == "login", "action", `must be "login"`)
	level := 1
	if s := strings.TrimSpace(in.AccessLevel); s != "" {
		n, err := strconv.Atoi(s)
		v.Check(err == nil && n >= 0 && n <= maxAccessLevel, "accessLevel", "must be a whole number from 0 to %d", maxAccessLevel)
		level = n
	}
	if in.Email != "" {
		v.Check(validEmail(in.Email), "email", "must be an email address")
	}
	for field, val := range map[string]string{"firstname": in.FirstName, "lastname": in.LastName, "displayname": in.DisplayName} {
		checkName(&v, field, val)
	}
	if err := v.Err(); err != nil {
		return SecureAuthGrant{}, err
	}
	hosts, err := a.d.Hosts.HostNames(ctx, key.CommunityID)
	if err != nil {
		return SecureAuthGrant{}, err
	}
	if !slices.Contains(hosts, strings.ToLower(in.Host)) {
		return SecureAuthGrant{}, errs.Forbiddenf("hostname is not this community's domain or uri.")
	}
	secret, err := newSecret()
	if err != nil {
		return SecureAuthGrant{}, err
	}
	now := a.d.Clock.Now()
	g := SecureAuthGrant{Token: secret, SessionID: id.New(now), Host: in.Host, KeyID: key.ID, ExpiresAt: now.Add(SecureAuthTTL)}
	err = a.d.DB.Tx(ctx, func(tx *db.Tx) error {
		g.Created = false
		u, err := a.partnerUserTx(ctx, tx, key.CommunityID, in, level, &g.Created)
		if err != nil {
			return err
		}
		g.User = u
		if _, err := tx.Exec(ctx, `INSERT INTO secure_auth_tokens (id, token_hash, community_id, user_id, key_id, host, access_level, expires_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, g.SessionID, hashSecret(secret), key.CommunityID, u.ID, key.ID, strings.ToLower(in.Host), level,
			g.ExpiresAt.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("store secure auth token: %w", err)
		}
		return a.d.Events.Append(ctx, tx, key.CommunityID, "secureauth.issued", map[string]any{
			"userId": u.ID, "sessionId": g.SessionID, "keyId": key.ID, "expiresAt": clock.Format(g.ExpiresAt)})
	})
	if err != nil {
		return SecureAuthGrant{}, fmt.Errorf("secure auth: %w", err)
	}
	return g, nil
}

// partnerUserTx finds the user Secure Auth names, or creates them (with a
// joined membership) when the request carries an email; an existing user
// who is not yet a member of community joins it.
func (a *Accounts) partnerUserTx(ctx context.Context, tx *db.Tx, communityID string, in SecureAuthInput, level int, created *bool) (user.User, error) {
	var u user.User
	found, err := a.d.Users.Find(ctx, in.Username, user.ByUsername)
	switch {
	case err == nil:
		u = found
	case errs.KindOf(err) != errs.NotFound:
		return user.User{}, err
	case in.Email == "":
		return user.User{}, errs.NotFoundf("User not found: send email (and firstname, lastname, displayname) to create them.")
	default:
		display := strings.TrimSpace(in.DisplayName)
		if display == "" {
			display = strings.TrimSpace(strings.TrimSpace(in.FirstName) + " " + strings.TrimSpace(in.LastName))
		}
		if display == "" {
			display = in.Username
		}
		u, err = a.d.Users.CreateAccountTx(ctx, tx, user.NewAccount{Email: in.Email, Username: in.Username,
			FirstName: strings.TrimSpace(in.FirstName), LastName: strings.TrimSpace(in.LastName), DisplayName: display, EmailVerified: true})
		if err != nil {
			return user.User{}, err
		}
		*created = true
		if err := a.d.Events.Append(ctx, tx, communityID, "user.registered", accountEvent(u, "secureAuth")); err != nil {
			return user.User{}, err
		}
	}
	m, err := a.d.Users.MemberTx(ctx, tx, communityID, u.ID)
	switch {
	case errs.KindOf(err) == errs.NotFound:
		_, err = a.d.Users.AddMemberTx(ctx, tx, communityID, u, user.MemberOptions{AccessLevel: level, Joined: true})
		return u, err
	case err != nil:
		return user.User{}, err
	case m.DeletedAt != nil:
		return user.User{}, errs.Forbiddenf("This user's membership of the community was deleted.")
	case !m.Joined:
		return user.User{}, errs.Forbiddenf("This user has not joined the community yet.")
	}
	return u, nil
}

var errBadLink = errs.Unauthenticatedf("This login link is invalid, expired or already used.")

// FinishSecureAuth consumes a login link (keyID from its path, its token and
// host) atomically and opens the session it promised. A reused, expired or
// altered link is Unauthenticated.
func (a *Accounts) FinishSecureAuth(ctx context.Context, keyID, token, host string) (SignedIn, error) {
	if !LooksLikeKey(token) {
		return SignedIn{}, errBadLink
	}
	var out SignedIn
	err := a.d.DB.Tx(ctx, func(tx *db.Tx) error {
		now := a.d.Clock.Now()
		var sessionID, communityID, userID, storedKey, storedHost string
		err := tx.QueryRow(ctx, `UPDATE secure_auth_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
			RETURNING id, community_id, user_id, key_id, host`, now.UnixMilli(), hashSecret(token), now.UnixMilli()).
			Scan(&sessionID, &communityID, &userID, &storedKey, &storedHost)
		if errors.Is(err, sql.ErrNoRows) {
			return errBadLink
		}
		if err != nil {
			return fmt.Errorf("consume secure auth token: %w", err)
		}
		if storedKey != strings.ToLower(keyID) || storedHost != strings.ToLower(strings.TrimSpace(host)) {
			return errBadLink
		}
		var active bool
		err = tx.QueryRow(ctx, "SELECT is_active FROM api_keys WHERE id = ?", storedKey).Scan(&active)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !active {
			return errs.Unauthenticatedf("The API key that issued this login link no longer works.")
		}
		if err != nil {
			return fmt.Errorf("read issuing key: %w", err)
		}
		m, err := a.d.Users.MemberTx(ctx, tx, communityID, userID)
		if err != nil || m.DeletedAt != nil || !m.Joined {
			return errBadLink
		}
		u, err := a.d.Users.GetTx(ctx, tx, userID)
		if err != nil {
			return err
		}
		out, err = a.openSession(ctx, tx, u, communityID, sessionID, "secureAuth")
		return err
	})
	if err != nil {
		return SignedIn{}, err
	}
	if _, err := a.d.Users.RecordVisit(ctx, out.Session.CommunityID, out.User.ID); err != nil {
		return SignedIn{}, err
	}
	return out, nil
}
