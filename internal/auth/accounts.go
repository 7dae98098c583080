package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"log/slog"
	"math/big"
	"net/mail"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jobs"
	mailer "github.com/rallyhq/rally/internal/mail"
	"github.com/rallyhq/rally/internal/user"
)

// Email-verification code rules.
const (
	// CodeLifetime is how long an email-verification code is valid.
	CodeLifetime = 15 * time.Minute
	// CodeAttempts is how many wrong codes a user may enter before the code
	// is used up.
	CodeAttempts = 5
)

// Mailer queues email inside a transaction.
type Mailer interface {
	SendTx(ctx context.Context, tx *db.Tx, msg mailer.Message) error
}

// CommunityHosts tells the host names a community answers at (its custom
// domain and its uri), lowercase.
type CommunityHosts interface {
	HostNames(ctx context.Context, communityID string) ([]string, error)
}

// AccountsDeps are what the sign-in service needs.
type AccountsDeps struct {
	DB       *db.DB
	Clock    clock.Clock
	Events   event.Appender
	Queue    *jobs.Queue
	Logger   *slog.Logger
	Users    *user.Store
	Keys     *Keys
	Sessions *Sessions
	Mail     Mailer
	Hosts    CommunityHosts
	// Limits bound failed logins; zero fields take DefaultLoginLimits.
	Limits LoginLimits
}

// Accounts holds the sign-up and sign-in rules: registration with an
// emailed code, password login with rate limits, the Secure Auth hand-off
// and user API keys.
type Accounts struct {
	d       AccountsDeps
	limits  LoginLimits
	limiter limiter
	// hashing bounds concurrent argon2id work (32 MiB each).
	hashing   chan struct{}
	dummyOnce sync.Once
	dummy     string
}

// pruneArgs is the periodic job that deletes expired sign-in records.
type pruneArgs struct{}

// Kind names the job in River.
func (pruneArgs) Kind() string { return "prune_auth" }

// NewAccounts returns the sign-in service and registers its periodic prune
// job on d.Queue (call it before the queue starts).
func NewAccounts(d AccountsDeps) (*Accounts, error) {
	l := d.Limits
	if l.Account.Max <= 0 || l.Account.Window <= 0 {
		l.Account = DefaultLoginLimits.Account
	}
	if l.Address.Max <= 0 || l.Address.Window <= 0 {
		l.Address = DefaultLoginLimits.Address
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Accounts{d: d, limits: l, limiter: limiter{db: d.DB, clock: d.Clock},
		hashing: make(chan struct{}, max(2, runtime.NumCPU()))}
	if err := jobs.AddWorker(d.Queue, &pruneWorker{a: a}); err != nil {
		return nil, fmt.Errorf("new accounts: %w", err)
	}
	d.Queue.AddPeriodic(river.NewPeriodicJob(river.PeriodicInterval(10*time.Minute),
		func() (river.JobArgs, *river.InsertOpts) { return pruneArgs{}, nil },
		&river.PeriodicJobOpts{ID: "prune_auth", RunOnStart: true}))
	return a, nil
}

// withHashSlot runs fn while holding one of the bounded hashing slots.
func (a *Accounts) withHashSlot(ctx context.Context, fn func()) error {
	select {
	case a.hashing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for password hashing: %w", ctx.Err())
	}
	defer func() { <-a.hashing }()
	fn()
	return nil
}

// RegisterInput is a self-service sign-up.
type RegisterInput struct {
	Email           string `json:"email"`
	Username        string `json:"username"`
	Password        string `json:"password"`
	ConfirmPassword string `json:"confirmPassword"`
	FirstName       string `json:"firstname"`
	LastName        string `json:"lastname"`
	DisplayName     string `json:"displayname"`
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{1,31}$`)

// validEmail reports whether s is a bare email address.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && len(s) <= 254
}

func checkName(v *errs.Validator, field, value string) {
	v.Check(utf8.RuneCountInString(value) <= 100, field, "must be at most 100 characters")
}

func (in *RegisterInput) validate() error {
	var v errs.Validator
	in.Email, in.Username = strings.TrimSpace(in.Email), strings.TrimSpace(in.Username)
	in.FirstName, in.LastName, in.DisplayName = strings.TrimSpace(in.FirstName), strings.TrimSpace(in.LastName), strings.TrimSpace(in.DisplayName)
	v.Check(validEmail(in.Email), "email", "must be an email address")
	v.Check(usernameRE.MatchString(in.Username), "username", "must be 2 to 32 letters, digits, dots, underscores or hyphens, starting with a letter or digit")
	if rule := CheckPasswordStrength(in.Password); rule != "" {
		v.Add("password", "%s", rule)
	}
	v.Check(in.ConfirmPassword == in.Password, "confirmPassword", "must match password")
	checkName(&v, "firstname", in.FirstName)
	checkName(&v, "lastname", in.LastName)
	checkName(&v, "displayname", in.DisplayName)
	return v.Err()
}

// Register creates an account with a password and its joined membership of
// communityID, and emails a 6-digit verification code; the user signs in
// once the email is verified. A taken email or username is a Conflict.
func (a *Accounts) Register(ctx context.Context, communityID string, in RegisterInput) (user.User, error) {
	if err := in.validate(); err != nil {
		return user.User{}, err
	}
	if in.DisplayName == "" {
		in.DisplayName = strings.TrimSpace(in.FirstName + " " + in.LastName)
	}
	if in.DisplayName == "" {
		in.DisplayName = in.Username
	}
	var hash string
	var hashErr error
	if err := a.withHashSlot(ctx, func() { hash, hashErr = HashPassword(in.Password) }); err != nil {
		return user.User{}, err
	}
	if hashErr != nil {
		return user.User{}, hashErr
	}
	var u user.User
	err := a.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		u, err = a.d.Users.CreateAccountTx(ctx, tx, user.NewAccount{Email: in.Email, Username: in.Username, FirstName: in.FirstName,
			LastName: in.LastName, DisplayName: in.DisplayName, PasswordHash: hash})
		if err != nil {
			return err
		}
		if _, err := a.d.Users.AddMemberTx(ctx, tx, communityID, u, user.MemberOptions{AccessLevel: 1, Joined: true}); err != nil {
			return err
		}
		if err := a.d.Events.Append(ctx, tx, communityID, "user.registered", accountEvent(u, "password")); err != nil {
			return err
		}
		return a.sendCodeTx(ctx, tx, communityID, u)
	})
	if err != nil {
		return user.User{}, fmt.Errorf("register: %w", err)
	}
	return u, nil
}

// accountEvent is the payload of account events: never the password hash.
func accountEvent(u user.User, method string) map[string]any {
	return map[string]any{"userId": u.ID, "id": u.NumID, "username": u.Username, "email": u.Email,
		"emailVerified": u.EmailVerified, "method": method}
}

// codeHash keys a verification code to its user under the installation
// secret, so a read of the table does not reveal live codes.
func (a *Accounts) codeHash(userID, code string) string {
	return hex.EncodeToString(a.d.Sessions.mac("email-code", userID, code))
}

// sendCodeTx replaces u's verification code with a fresh one and mails it.
func (a *Accounts) sendCodeTx(ctx context.Context, tx *db.Tx, communityID string, u user.User) error {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return fmt.Errorf("verification code: %w", err)
	}
	code := fmt.Sprintf("%06d", n.Int64())
	now := a.d.Clock.Now()
	if _, err := tx.Exec(ctx, `INSERT INTO email_codes (user_id, community_id, code_hash, attempts, expires_at, created_at) VALUES (?, ?, ?, 0, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET community_id = excluded.community_id, code_hash = excluded.code_hash, attempts = 0,
		expires_at = excluded.expires_at, created_at = excluded.created_at`,
		u.ID, communityID, a.codeHash(u.ID, code), now.Add(CodeLifetime).UnixMilli(), now.UnixMilli()); err != nil {
		return fmt.Errorf("store verification code: %w", err)
	}
	return a.d.Mail.SendTx(ctx, tx, mailer.Message{
		To:      u.Email,
		Subject: "Your verification code: " + code,
		Text: fmt.Sprintf("Hello %s,\n\nYour email verification code is %s.\nIt expires in %d minutes.\n\n"+
			"If you did not sign up, ignore this message.\n", u.DisplayName, code, int(CodeLifetime/time.Minute)),
	})
}

// VerifyInput is an email-verification attempt.
type VerifyInput struct {
	Email string `json:"email"`
	Code  string `json:"code"`
}

// VerifyEmail checks the code mailed to a member of communityID and marks
// the email verified. Each wrong code uses up one of CodeAttempts tries.
func (a *Accounts) VerifyEmail(ctx context.Context, communityID string, in VerifyInput) (user.User, error) {
	var v errs.Validator
	in.Email, in.Code = strings.TrimSpace(in.Email), strings.TrimSpace(in.Code)
	v.Check(in.Email != "", "email", "is required")
	v.Check(len(in.Code) == 6 && strings.Trim(in.Code, "0123456789") == "", "code", "must be the 6-digit code from the email")
	if err := v.Err(); err != nil {
		return user.User{}, err
	}
	u, _, err := a.d.Users.FindMember(ctx, communityID, in.Email, user.ByEmail)
	if err != nil {
		return user.User{}, err
	}
	if u.EmailVerified {
		return user.User{}, errs.Conflictf("Email is already verified.")
	}
	var refusal error
	err = a.d.DB.Tx(ctx, func(tx *db.Tx) error {
		refusal = nil
		var hash string
		var attempts int
		var expires int64
		err := tx.QueryRow(ctx, "SELECT code_hash, attempts, expires_at FROM email_codes WHERE user_id = ?"+tx.DB().ForUpdate(), u.ID).
			Scan(&hash, &attempts, &expires)
		if errors.Is(err, sql.ErrNoRows) || err == nil && (attempts >= CodeAttempts || !a.d.Clock.Now().Before(time.UnixMilli(expires))) {
			refusal = codeError("has expired or was used up; sign in with your password to get a new code")
			return nil
		}
		if err != nil {
			return fmt.Errorf("read verification code: %w", err)
		}
		if !hmac.Equal([]byte(hash), []byte(a.codeHash(u.ID, in.Code))) {
			if _, err := tx.Exec(ctx, "UPDATE email_codes SET attempts = attempts + 1 WHERE user_id = ?", u.ID); err != nil {
				return fmt.Errorf("count code attempt: %w", err)
			}
			refusal = codeError(fmt.Sprintf("is wrong (%d tries left)", CodeAttempts-attempts-1))
			return nil
		}
		if _, err := tx.Exec(ctx, "DELETE FROM email_codes WHERE user_id = ?", u.ID); err != nil {
			return fmt.Errorf("use verification code: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE users SET email_verified = ?, updated_at = ? WHERE id = ?", true, a.d.Clock.Now().UnixMilli(), u.ID); err != nil {
			return fmt.Errorf("verify email: %w", err)
		}
		u.EmailVerified = true
		return a.d.Events.Append(ctx, tx, communityID, "user.verified", accountEvent(u, "email-code"))
	})
	if err != nil {
		return user.User{}, err
	}
	if refusal != nil {
		return user.User{}, refusal
	}
	return u, nil
}

func codeError(msg string) error {
	return &errs.Error{Kind: errs.Invalid, Message: "Invalid input.", Fields: []errs.FieldError{{Field: "code", Message: msg}}}
}

// LoginInput is a password sign-in: the user is named by Identifier, Email
// or Username (the first one given).
type LoginInput struct {
	Identifier string `json:"identifier"`
	Email      string `json:"email"`
	Username   string `json:"username"`
	Password   string `json:"password"`
}

// SignedIn is an opened session.
type SignedIn struct {
	Token   string
	Session Session
	User    user.User
}

var errBadCredentials = errs.Unauthenticatedf("Invalid credentials.")

// dummyHash is verified against when the user is unknown, so a miss costs
// as much as a wrong password.
func (a *Accounts) dummyHash() string {
	a.dummyOnce.Do(func() { a.dummy, _ = HashPassword(NewTokenID()) })
	return a.dummy
}

// Login checks a password sign-in to communityID from client address addr
// and opens a session. Wrong passwords, unknown users, deleted members and
// non-members are all "Invalid credentials." (401); an unverified email is
// Forbidden (and a fresh code is mailed when none is live); too many
// failures per account or per address are RateLimited.
func (a *Accounts) Login(ctx context.Context, communityID string, in LoginInput, addr string) (SignedIn, error) {
	ident, kind := strings.TrimSpace(in.Identifier), user.ByAny
	switch {
	case ident != "":
	case strings.TrimSpace(in.Email) != "":
		ident, kind = strings.TrimSpace(in.Email), user.ByEmail
	default:
		ident, kind = strings.TrimSpace(in.Username), user.ByUsername
	}
	var v errs.Validator
	v.Check(ident != "", "identifier", "is required (or send email or username)")
	v.Check(in.Password != "", "password", "is required")
	if err := v.Err(); err != nil {
		return SignedIn{}, err
	}
	addrSubject := "addr:" + addr
	if err := a.checkLimit(ctx, addrSubject, a.limits.Address); err != nil {
		return SignedIn{}, err
	}
	u, err := a.d.Users.Find(ctx, ident, kind)
	if err != nil && errs.KindOf(err) != errs.NotFound {
		return SignedIn{}, err
	}
	acctSubject := "ident:" + user.Key(ident)
	if u.ID != "" {
		acctSubject = "user:" + u.ID
	}
	if err := a.checkLimit(ctx, acctSubject, a.limits.Account); err != nil {
		return SignedIn{}, err
	}
	hash := u.PasswordHash
	if hash == "" {
		hash = a.dummyHash()
	}
	var ok bool
	if err := a.withHashSlot(ctx, func() { ok = VerifyPassword(hash, in.Password) && u.PasswordHash != "" }); err != nil {
		return SignedIn{}, err
	}
	if ok {
		m, err := a.d.Users.Member(ctx, communityID, u.ID)
		if err != nil && errs.KindOf(err) != errs.NotFound {
			return SignedIn{}, err
		}
		ok = err == nil && m.DeletedAt == nil && m.Joined
	}
	if !ok {
		if err := a.limiter.fail(ctx, addrSubject, a.limits.Address); err != nil {
			return SignedIn{}, err
		}
		if err := a.limiter.fail(ctx, acctSubject, a.limits.Account); err != nil {
			return SignedIn{}, err
		}
		return SignedIn{}, errBadCredentials
	}
	if err := a.limiter.clear(ctx, acctSubject); err != nil {
		return SignedIn{}, err
	}
	if !u.EmailVerified {
		return SignedIn{}, a.unverified(ctx, communityID, u)
	}
	return a.openSession(ctx, nil, u, communityID, "", "password")
}

// checkLimit refuses subject while it is over rule.
func (a *Accounts) checkLimit(ctx context.Context, subject string, rule LimitRule) error {
	wait, err := a.limiter.blocked(ctx, subject, rule)
	if err != nil {
		return err
	}
	if wait > 0 {
		e := errs.New(errs.RateLimited, "Too many failed sign-in attempts; try again in %d seconds.", int(wait.Round(time.Second)/time.Second)+1)
		e.RetryAfter = wait
		return e
	}
	return nil
}

// unverified mails a fresh code when u has no live one and explains.
func (a *Accounts) unverified(ctx context.Context, communityID string, u user.User) error {
	sent := false
	err := a.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var live int
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM email_codes WHERE user_id = ? AND attempts < ? AND expires_at > ?",
			u.ID, CodeAttempts, a.d.Clock.Now().UnixMilli()).Scan(&live); err != nil {
			return fmt.Errorf("read verification code: %w", err)
		}
		if live > 0 {
			return nil
		}
		sent = true
		return a.sendCodeTx(ctx, tx, communityID, u)
	})
	if err != nil {
		return err
	}
	msg := "Email address is not verified: enter the code we emailed you at POST /v1/auth/verify-email, then sign in."
	if sent {
		msg = "Email address is not verified: we emailed you a new code; enter it at POST /v1/auth/verify-email, then sign in."
	}
	return errs.Forbiddenf("%s", msg)
}

// openSession records the sign-in (last login, session.created) inside tx
// (its own transaction when tx is nil), signs the token with id jti ("" for
// a fresh one) and counts the visit.
func (a *Accounts) openSession(ctx context.Context, tx *db.Tx, u user.User, communityID, jti, method string) (SignedIn, error) {
	token, sess, err := a.d.Sessions.Issue(u, communityID, jti)
	if err != nil {
		return SignedIn{}, err
	}
	record := func(tx *db.Tx) error {
		now := a.d.Clock.Now()
		if _, err := tx.Exec(ctx, "UPDATE users SET last_login_at = ? WHERE id = ?", now.UnixMilli(), u.ID); err != nil {
			return fmt.Errorf("record login: %w", err)
		}
		u.LastLoginAt = &now
		return a.d.Events.Append(ctx, tx, communityID, "session.created", map[string]any{
			"userId": u.ID, "sessionId": sess.TokenID, "method": method, "expiresAt": clock.Format(sess.ExpiresAt)})
	}
	if tx != nil {
		err = record(tx)
	} else {
		err = a.d.DB.Tx(ctx, record)
	}
	if err != nil {
		return SignedIn{}, err
	}
	if tx == nil {
		if _, err := a.d.Users.RecordVisit(ctx, communityID, u.ID); err != nil {
			return SignedIn{}, err
		}
	}
	return SignedIn{Token: token, Session: sess, User: u}, nil
}

// IssueFor opens a session for userID, a live member of communityID,
// without a password (tests and trusted server-side flows).
func (a *Accounts) IssueFor(ctx context.Context, communityID, userID string) (SignedIn, error) {
	m, err := a.d.Users.Member(ctx, communityID, userID)
	if err != nil {
		return SignedIn{}, err
	}
	if m.DeletedAt != nil || !m.Joined {
		return SignedIn{}, errs.NotFoundf("User not found.")
	}
	u, err := a.d.Users.Get(ctx, userID)
	if err != nil {
		return SignedIn{}, err
	}
	return a.openSession(ctx, nil, u, communityID, "", "issued")
}

// CreateUserKey makes a user API key for userID in the body's community,
// which the user must be a live member of.
func (a *Accounts) CreateUserKey(ctx context.Context, userID string, in KeyInput) (Key, string, error) {
	if id := strings.ToLower(strings.TrimSpace(in.CommunityID)); len(id) == 24 {
		m, err := a.d.Users.Member(ctx, id, userID)
		if errs.KindOf(err) == errs.NotFound || err == nil && (m.DeletedAt != nil || !m.Joined) {
			return Key{}, "", errs.Forbiddenf("You are not a member of this community.")
		}
		if err != nil {
			return Key{}, "", err
		}
	}
	return a.d.Keys.CreateScoped(ctx, KeyScope{Kind: KindUser, UserID: userID}, in)
}

// prune deletes sign-in records nobody needs any more.
func (a *Accounts) prune(ctx context.Context) error {
	now := a.d.Clock.Now()
	window := max(a.limits.Account.Window, a.limits.Address.Window)
	for _, q := range []struct {
		sql string
		arg int64
	}{
		{"DELETE FROM revoked_tokens WHERE expires_at < ?", now.UnixMilli()},
		{"DELETE FROM login_limits WHERE window_start < ?", now.Add(-window).UnixMilli()},
		{"DELETE FROM secure_auth_tokens WHERE expires_at < ?", now.Add(-time.Hour).UnixMilli()},
		{"DELETE FROM email_codes WHERE expires_at < ?", now.UnixMilli()},
	} {
		if _, err := a.d.DB.Exec(ctx, q.sql, q.arg); err != nil {
			return fmt.Errorf("prune auth records: %w", err)
		}
	}
	return nil
}

type pruneWorker struct {
	river.WorkerDefaults[pruneArgs]
	a *Accounts
}

func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[pruneArgs]) error { return w.a.prune(ctx) }

// SignOut ends the signed-in session, or every session of its user when
// everywhere is true.
func (a *Accounts) SignOut(ctx context.Context, sess Session, everywhere bool) error {
	if everywhere {
		return a.d.Sessions.RevokeAll(ctx, sess)
	}
	return a.d.Sessions.Revoke(ctx, sess)
}
