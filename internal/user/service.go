package user

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	mailer "github.com/rallyhq/rally/internal/mail"
)

// FieldValue is one custom user-field value as the API sends it (Create New
// User's customFields items). It mirrors userfield.Value.
type FieldValue struct {
	FieldIDOrName string `json:"fieldIdorName"`
	Value         any    `json:"value"`
}

// FieldActor says who changed a field value, for its history. It mirrors
// userfield.Actor.
type FieldActor struct {
	// Kind is "apikey", "user", "system", "webhook" or "import".
	Kind string
	// ID is the key's or the user's _id.
	ID string
}

// FieldValues writes and reads members' custom user-field values; the
// user-field service implements it.
type FieldValues interface {
	// SetValuesTx validates vals against the community's field definitions
	// and writes them (with history) in tx; unknown fields or bad values are
	// Invalid errors naming customFields.
	SetValuesTx(ctx context.Context, tx *db.Tx, communityID, userID string, vals []FieldValue, actor FieldActor, source string) error
	// ValuesOfMany returns members' current values keyed by user _id, then
	// field name (every user asked for has an entry).
	ValuesOfMany(ctx context.Context, communityID string, userIDs []string) (map[string]map[string]any, error)
}

// RoleReader tells which roles a member holds; the role service implements it.
type RoleReader interface {
	// MemberRoleTitles returns the titles of the member's roles (@all first)
	// and the title of the highest one.
	MemberRoleTitles(ctx context.Context, communityID, userID string) (titles []string, highest string, err error)
}

// Stats are a member's activity counters, kept by the XP, wallet, messaging
// and streak domains.
type Stats struct {
	XP               int64
	Coins            int64
	XPEarnedToday    int64
	CoinsEarnedToday int64
	TotalMessages    int64
	TotalReactions   int64
	ReplySent        int64
	// TimeSpent is in seconds.
	TimeSpent   int64
	LoginStreak int64
	// Level is the member's level across all tiers (from 1; 0 below the
	// first level or without tiers) and Tier the tier it belongs to.
	Level int
	Tier  *Tier
}

// Tier is the tier a member's lifetime XP reaches, as Get User Data shows it.
type Tier struct {
	Name string `json:"name"`
	Icon string `json:"icon"`
	// Level is the level within the tier, 1 to 3.
	Level int `json:"level"`
}

// Counters reads members' activity counters. Domains that keep them plug in
// here; until then NoCounters reports that nothing has been counted.
type Counters interface {
	// Stats returns one member's counters.
	Stats(ctx context.Context, communityID, userID string) (Stats, error)
	// Column returns a scalar SQL expression for counter field ("xp" or
	// "coins") of the member row aliased m (m.community_id, m.user_id), used
	// to filter and project lists.
	Column(field string) string
}

// NoCounters is the Counters of an installation where no domain counts
// activity yet: every counter is zero.
type NoCounters struct{}

// Stats returns zero counters.
func (NoCounters) Stats(context.Context, string, string) (Stats, error) { return Stats{}, nil }

// Column returns the constant 0.
func (NoCounters) Column(string) string { return "0" }

// ServiceDeps are what the user service needs.
type ServiceDeps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	Store  *Store
	// Fields writes and reads custom field values (the user-field service).
	Fields FieldValues
	// Roles reads members' roles; nil means every member holds only @all.
	Roles RoleReader
	// Counters reads activity counters; nil means NoCounters.
	Counters Counters
	// CheckPassword returns "" for an acceptable password, else the rule it
	// breaks (auth.CheckPasswordStrength; package auth imports this one, so
	// it comes in as a function).
	CheckPassword func(password string) string
	// HashPassword hashes a password for storage (auth.HashPassword).
	HashPassword func(password string) (string, error)
	// Mail queues the welcome message Create New User's sendEmail and
	// emailPassword ask for; nil sends none (the event is still written).
	Mail Mailer
	// Referrals resolves a new user's referral value through the
	// community's referral mapping and records the referral; nil matches
	// the referrer's externalId, username or numeric id only.
	Referrals Referrals
}

// Referrals resolves and records referrals (the referral service).
type Referrals interface {
	// ReferrerTx returns the member value names, or "" with final set when
	// no other identifier may be tried, or "" unset to try externalId,
	// username and numeric id.
	ReferrerTx(ctx context.Context, tx *db.Tx, communityID, value string) (userID string, final bool, err error)
	// RecordTx records that referrerID referred the new member refereeID.
	RecordTx(ctx context.Context, tx *db.Tx, communityID, refereeID, referrerID, value string) error
}

// Mailer queues an email inside the caller's transaction (mail.Mailer).
type Mailer interface {
	SendTx(ctx context.Context, tx *db.Tx, msg mailer.Message) error
}

// Service holds the rules for partner-managed users: creating them,
// reading and filtering them, soft-deleting and restoring them, and their
// avatars.
type Service struct {
	d ServiceDeps
}

// NewService returns the user service.
func NewService(d ServiceDeps) *Service {
	if d.Counters == nil {
		d.Counters = NoCounters{}
	}
	return &Service{d: d}
}

// Store is the account and membership store behind the service.
func (s *Service) Store() *Store { return s.d.Store }

// Access levels a partner may give a member.
const (
	MinAccessLevel = 0
	MaxAccessLevel = 10
)

// CreateInput is Create New User's body.
type CreateInput struct {
	FirstName       string       `json:"firstname"`
	LastName        string       `json:"lastname"`
	Username        string       `json:"username"`
	DisplayName     string       `json:"displayname"`
	Email           string       `json:"email"`
	Password        *string      `json:"password"`
	ConfirmPassword *string      `json:"confirmPassword"`
	AccessLevel     *int         `json:"accessLevel"`
	JoinServer      *bool        `json:"joinServer"`
	SendEmail       bool         `json:"sendEmail"`
	EmailPassword   bool         `json:"emailPassword"`
	EmailTemplate   string       `json:"emailTemplate"`
	CustomFields    []FieldValue `json:"customFields"`
	Referral        *string      `json:"referral"`
	ExternalID      *string      `json:"externalId"`
	CommunityID     *string      `json:"communityId"`
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{2,32}$`)

const maxNameLen = 100

// validate checks in, with checkPassword judging password strength, and
// trims its strings.
func (in *CreateInput) validate(checkPassword func(string) string) error {
	var v errs.Validator
	in.Email, in.Username = strings.TrimSpace(in.Email), strings.TrimSpace(in.Username)
	in.FirstName, in.LastName = strings.TrimSpace(in.FirstName), strings.TrimSpace(in.LastName)
	in.DisplayName = strings.TrimSpace(in.DisplayName)
	if in.Email == "" {
		v.Add("email", "is required")
	} else if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || len(in.Email) > 254 {
		v.Add("email", "must be an email address such as ada@example.com")
	}
	if in.Username == "" {
		v.Add("username", "is required")
	} else {
		v.Check(usernameRE.MatchString(in.Username) && !strings.Contains(in.Username, "@"), "username",
			"must be 2 to 32 letters, digits, '_', '.' or '-'")
	}
	for _, f := range []struct{ name, val string }{
		{"firstname", in.FirstName}, {"lastname", in.LastName}, {"displayname", in.DisplayName},
	} {
		v.Check(utf8.RuneCountInString(f.val) <= maxNameLen, f.name, "must be at most %d characters", maxNameLen)
	}
	if in.Password != nil || in.ConfirmPassword != nil {
		switch {
		case in.Password == nil:
			v.Add("password", "is required with confirmPassword")
		case in.ConfirmPassword == nil || *in.ConfirmPassword != *in.Password:
			v.Add("confirmPassword", "must match password")
		}
		if in.Password != nil {
			if rule := checkPassword(*in.Password); rule != "" {
				v.Add("password", "%s", rule)
			}
		}
	}
	if in.EmailPassword && in.Password == nil {
		v.Add("emailPassword", "needs a password to send")
	}
	if in.AccessLevel != nil {
		v.Check(*in.AccessLevel >= MinAccessLevel && *in.AccessLevel <= MaxAccessLevel, "accessLevel",
			"must be an integer from %d to %d", MinAccessLevel, MaxAccessLevel)
	}
	v.Check(len(in.EmailTemplate) <= 100, "emailTemplate", "must be at most 100 characters")
	for i, cf := range in.CustomFields {
		v.Check(strings.TrimSpace(cf.FieldIDOrName) != "", fmt.Sprintf("customFields.%d.fieldIdorName", i), "is required")
		switch cf.Value.(type) {
		case string, float64, bool:
		default:
			v.Add(fmt.Sprintf("customFields.%d.value", i), "must be a string, number or boolean")
		}
	}
	if in.Referral != nil {
		*in.Referral = strings.TrimSpace(*in.Referral)
		v.Check(*in.Referral != "", "referral", "must not be empty")
	}
	if in.ExternalID != nil {
		*in.ExternalID = strings.TrimSpace(*in.ExternalID)
		v.Check(*in.ExternalID != "" && len(*in.ExternalID) <= 200, "externalId", "must be 1 to 200 characters")
	}
	return v.Err()
}

// Created is a user made by Create, with their membership.
type Created struct {
	User   User
	Member Member
	// ExternalID and ReferredBy are the membership's identifier and referrer.
	ExternalID *string
	ReferredBy *string
}

// Create makes an account and its membership of communityID for a partner
// (actor is the key). The account counts as email-verified. An email or
// username already taken anywhere on the installation is a Conflict naming
// the field, whether or not that account belongs to this community.
func (s *Service) Create(ctx context.Context, communityID string, in CreateInput, actor FieldActor) (Created, error) {
	if in.CommunityID != nil && *in.CommunityID != communityID {
		return Created{}, errs.Forbiddenf("API key has no access to this community.")
	}
	if err := in.validate(s.d.CheckPassword); err != nil {
		return Created{}, err
	}
	var hash string
	if in.Password != nil {
		h, err := s.d.HashPassword(*in.Password)
		if err != nil {
			return Created{}, err
		}
		hash = h
	}
	level, joined := 1, true
	if in.AccessLevel != nil {
		level = *in.AccessLevel
	}
	if in.JoinServer != nil {
		joined = *in.JoinServer
	}
	display := in.DisplayName
	if display == "" {
		display = in.Username
	}
	var out Created
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		out = Created{}
		var referrer string
		if in.Referral != nil {
			r, err := s.findReferrerTx(ctx, tx, communityID, *in.Referral)
			if err != nil {
				return err
			}
			referrer = r
		}
		u, err := s.d.Store.CreateAccountTx(ctx, tx, NewAccount{
			Email: in.Email, Username: in.Username, FirstName: in.FirstName, LastName: in.LastName,
			DisplayName: display, PasswordHash: hash, EmailVerified: true,
		})
		if err != nil {
			return err
		}
		created := map[string]any{
			"userId": u.ID, "id": u.NumID, "username": u.Username, "email": u.Email, "displayName": u.DisplayName,
			"firstName": u.FirstName, "lastName": u.LastName, "communityId": communityID,
			"createdAt": clock.Format(u.CreatedAt),
		}
		if referrer != "" {
			created["referredBy"] = referrer // the referrer's _id: the reward subscriber credits them
		}
		if err := s.d.Events.Append(ctx, tx, communityID, "user.created", created); err != nil {
			return err
		}
		m, err := s.d.Store.AddMemberTx(ctx, tx, communityID, u, MemberOptions{AccessLevel: level, Joined: joined})
		if err != nil {
			return err
		}
		out.User, out.Member = u, m
		if in.ExternalID != nil || referrer != "" {
			if referrer != "" {
				out.ReferredBy = &referrer
			}
			out.ExternalID = in.ExternalID
			_, err := tx.Exec(ctx, "UPDATE members SET external_id = ?, referred_by = ? WHERE community_id = ? AND user_id = ?",
				in.ExternalID, out.ReferredBy, communityID, u.ID)
			if db.UniqueViolationOn(err, "external_id") {
				return &errs.Error{Kind: errs.Conflict, Message: "A member with this externalId already exists.",
					Fields: []errs.FieldError{{Field: "externalId", Message: "is already taken"}}}
			}
			if err != nil {
				return fmt.Errorf("set member identifiers: %w", err)
			}
		}
		if len(in.CustomFields) > 0 {
			if err := s.d.Fields.SetValuesTx(ctx, tx, communityID, u.ID, in.CustomFields, actor, "createUser"); err != nil {
				return err
			}
		}
		if referrer != "" && s.d.Referrals != nil {
			if err := s.d.Referrals.RecordTx(ctx, tx, communityID, u.ID, referrer, *in.Referral); err != nil {
				return err
			}
		}
		if in.SendEmail || in.EmailPassword {
			if err := s.d.Events.Append(ctx, tx, communityID, "user.welcome.requested", map[string]any{
				"userId": u.ID, "id": u.NumID, "username": u.Username, "email": u.Email, "communityId": communityID,
				"sendEmail": in.SendEmail, "emailPassword": in.EmailPassword, "emailTemplate": in.EmailTemplate,
			}); err != nil {
				return err
			}
			return s.welcomeTx(ctx, tx, communityID, u, in.EmailPassword)
		}
		return nil
	})
	if err != nil {
		return Created{}, err
	}
	return out, nil
}

// welcomeTx queues the welcome message of a partner-created account. With
// withPassword it says the community chose a password for the account, but
// never carries the password itself: mail travels and is kept (the outbox)
// in clear text, and a password is a secret only its owner should hold.
func (s *Service) welcomeTx(ctx context.Context, tx *db.Tx, communityID string, u User, withPassword bool) error {
	if s.d.Mail == nil {
		return nil
	}
	var community string
	if err := tx.QueryRow(ctx, "SELECT name FROM communities WHERE id = ?", communityID).Scan(&community); err != nil {
		return fmt.Errorf("welcome mail: read community: %w", err)
	}
	text := fmt.Sprintf("Hello %s,\n\nYour %s account is ready. Your username is %s.\n", u.DisplayName, community, u.Username)
	if withPassword {
		text += fmt.Sprintf("%s has set a password for you; sign in with your username or email (%s) and that password.\n",
			community, u.Email)
	}
	return s.d.Mail.SendTx(ctx, tx, mailer.Message{To: u.Email, Subject: "Welcome to " + community, Text: text})
}

// findReferrerTx resolves a referral value to a live member of community:
// through the community's referral mapping (Referrals), then, unless the
// mapping forbids it, by externalId, then username, then numeric id.
// Unknown values are Invalid naming referral.
func (s *Service) findReferrerTx(ctx context.Context, tx *db.Tx, communityID, ref string) (string, error) {
	if s.d.Referrals != nil {
		userID, final, err := s.d.Referrals.ReferrerTx(ctx, tx, communityID, ref)
		if err != nil || userID != "" {
			return userID, err
		}
		if final {
			var v errs.Validator
			v.Add("referral", "matches no member of this community")
			return "", v.Err()
		}
	}
	var userID string
	err := tx.QueryRow(ctx, `SELECT m.user_id FROM members m JOIN users u ON u.id = m.user_id
		WHERE m.community_id = ? AND m.deleted_at IS NULL AND (m.external_id = ? OR u.username_key = ? OR u.seq = ?)
		ORDER BY CASE WHEN m.external_id = ? THEN 0 WHEN u.username_key = ? THEN 1 ELSE 2 END LIMIT 1`,
		communityID, ref, Key(ref), numericOrZero(ref), ref, Key(ref)).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		var v errs.Validator
		v.Add("referral", "matches no member of this community")
		return "", v.Err()
	}
	if err != nil {
		return "", fmt.Errorf("find referrer: %w", err)
	}
	return userID, nil
}

// numericOrZero parses s as a positive numeric id, or 0 (which no user has).
func numericOrZero(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// Info is Get User Data's view of a member.
type Info struct {
	User         User
	Member       Member
	Stats        Stats
	Roles        []string
	HighestRole  string
	CustomFields map[string]any
}

// Info reads a live member of communityID named by identifier (numeric id,
// _id, email or username).
func (s *Service) Info(ctx context.Context, communityID, identifier string) (Info, error) {
	u, m, err := s.d.Store.FindMember(ctx, communityID, identifier, ByAny)
	if err != nil {
		return Info{}, err
	}
	out := Info{User: u, Member: m, Roles: []string{"@all"}, HighestRole: "@all"}
	if out.Stats, err = s.d.Counters.Stats(ctx, communityID, u.ID); err != nil {
		return Info{}, fmt.Errorf("read counters: %w", err)
	}
	if s.d.Roles != nil {
		if out.Roles, out.HighestRole, err = s.d.Roles.MemberRoleTitles(ctx, communityID, u.ID); err != nil {
			return Info{}, fmt.Errorf("read roles: %w", err)
		}
	}
	all, err := s.d.Fields.ValuesOfMany(ctx, communityID, []string{u.ID})
	out.CustomFields = all[u.ID]
	if err != nil {
		return Info{}, fmt.Errorf("read custom fields: %w", err)
	}
	if out.CustomFields == nil {
		out.CustomFields = map[string]any{}
	}
	return out, nil
}

// Manage actions.
const (
	ActionDelete  = "delete"
	ActionRestore = "restore"
)

// Manage soft-deletes or restores the member of communityID named by
// identifier. A deleted member cannot sign in to the community and vanishes
// from its lists; restoring brings them back. Repeating an action changes
// nothing and emits nothing. The community owner cannot be deleted.
func (s *Service) Manage(ctx context.Context, communityID, action, identifier string) error {
	var v errs.Validator
	v.Check(action == ActionDelete || action == ActionRestore, "action", "must be %q or %q", ActionDelete, ActionRestore)
	v.Check(strings.TrimSpace(identifier) != "", "user", "is required (username, email or id)")
	if err := v.Err(); err != nil {
		return err
	}
	u, err := s.d.Store.Find(ctx, identifier, ByAny)
	if err != nil {
		return err
	}
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		m, err := s.d.Store.MemberTx(ctx, tx, communityID, u.ID)
		if err != nil {
			return err
		}
		now := s.d.Clock.Now()
		payload := map[string]any{"userId": u.ID, "id": u.NumID, "username": u.Username, "email": u.Email,
			"communityId": communityID}
		switch {
		case action == ActionDelete && m.DeletedAt == nil:
			if m.IsOwner {
				return errs.Conflictf("The community owner cannot be deleted.")
			}
			payload["deletedAt"] = clock.Format(now)
			if _, err := tx.Exec(ctx, "UPDATE members SET deleted_at = ?, updated_at = ? WHERE community_id = ? AND user_id = ?",
				now.UnixMilli(), now.UnixMilli(), communityID, u.ID); err != nil {
				return fmt.Errorf("delete member: %w", err)
			}
			return s.d.Events.Append(ctx, tx, communityID, "user.deleted", payload)
		case action == ActionRestore && m.DeletedAt != nil:
			payload["restoredAt"] = clock.Format(now)
			if _, err := tx.Exec(ctx, "UPDATE members SET deleted_at = NULL, updated_at = ? WHERE community_id = ? AND user_id = ?",
				now.UnixMilli(), communityID, u.ID); err != nil {
				return fmt.Errorf("restore member: %w", err)
			}
			return s.d.Events.Append(ctx, tx, communityID, "user.restored", payload)
		}
		return nil
	})
}

// SetAvatar finds the live member of communityID named by identifier (of
// kind, see Find), calls store inside the transaction to keep the image
// (it returns the blob key), points the account's avatar at urlOf(key),
// records the key as the avatar's file (what keeps the blob from the
// sweep; the replaced avatar's blob is then collectable) and emits
// user.avatar.updated. Nothing is stored for an unknown user.
func (s *Service) SetAvatar(ctx context.Context, communityID, identifier, kind string, store func(*db.Tx) (string, error),
	urlOf func(key string) string) (User, error) {
	u, _, err := s.d.Store.FindMember(ctx, communityID, identifier, kind)
	if err != nil {
		return User{}, err
	}
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		key, err := store(tx)
		if err != nil {
			return err
		}
		url := urlOf(key)
		now := s.d.Clock.Now()
		if _, err := tx.Exec(ctx, "UPDATE users SET avatar = ?, avatar_file = ?, updated_at = ? WHERE id = ?",
			url, key, now.UnixMilli(), u.ID); err != nil {
			return fmt.Errorf("set avatar: %w", err)
		}
		u.Avatar, u.UpdatedAt = &url, now
		return s.d.Events.Append(ctx, tx, communityID, "user.avatar.updated", map[string]any{
			"userId": u.ID, "id": u.NumID, "username": u.Username, "communityId": communityID, "avatar": url,
		})
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// OnlineWindow is how recently a user must have been seen to count as online.
const OnlineWindow = 5 * time.Minute

// Profile is a user as the Application API shows them.
type Profile struct {
	User     User
	IsOnline bool
}

// Profile returns the account userID as seen by the signed-in viewerID: their
// own record, or any user sharing a live community membership with them.
// Anyone else is NotFound, so ids cannot be probed.
func (s *Service) Profile(ctx context.Context, viewerID, userID string) (Profile, error) {
	if viewerID != userID {
		var one int
		err := s.d.DB.QueryRow(ctx, `SELECT 1 FROM members a JOIN members b ON b.community_id = a.community_id
			WHERE a.user_id = ? AND b.user_id = ? AND a.deleted_at IS NULL AND b.deleted_at IS NULL AND a.joined AND b.joined
			LIMIT 1`, viewerID, userID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return Profile{}, errs.NotFoundf("User not found.")
		}
		if err != nil {
			return Profile{}, fmt.Errorf("check shared community: %w", err)
		}
	}
	u, err := s.d.Store.Get(ctx, userID)
	if err != nil {
		return Profile{}, err
	}
	var seen sql.NullInt64
	if err := s.d.DB.QueryRow(ctx, "SELECT MAX(last_seen_at) FROM members WHERE user_id = ?", userID).Scan(&seen); err != nil {
		return Profile{}, fmt.Errorf("read last seen: %w", err)
	}
	return Profile{User: u, IsOnline: s.online(seen)}, nil
}

func (s *Service) online(seen sql.NullInt64) bool {
	return seen.Valid && s.d.Clock.Now().Sub(time.UnixMilli(seen.Int64)) <= OnlineWindow
}

// Members lists the joined, live members of communityID in id order, skip
// and limit paged, optionally only those whose username, display name or
// email contains search (case-insensitive). It returns the page and the
// total count.
func (s *Service) Members(ctx context.Context, communityID, search string, skip, limit int) ([]Profile, int, error) {
	where := "m.community_id = ? AND m.deleted_at IS NULL AND m.joined"
	args := []any{communityID}
	if search = strings.ToLower(strings.TrimSpace(search)); search != "" {
		pat := "%" + escapeLike(search) + "%"
		where += ` AND (u.username_key LIKE ? ESCAPE '\' OR u.email_key LIKE ? ESCAPE '\' OR LOWER(u.displayname) LIKE ? ESCAPE '\')`
		args = append(args, pat, pat, pat)
	}
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM members m JOIN users u ON u.id = m.user_id WHERE "+where,
		args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count members: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, "SELECT "+prefixed("u.", userColumns)+", m.last_seen_at FROM members m JOIN users u ON u.id = m.user_id WHERE "+
		where+" ORDER BY m.user_id LIMIT ? OFFSET ?", append(args, limit, skip)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	out := []Profile{}
	for rows.Next() {
		var seen sql.NullInt64
		u, err := scanUser(scanFunc(func(dst ...any) error { return rows.Scan(append(dst, &seen)...) }))
		if err != nil {
			return nil, 0, err
		}
		out = append(out, Profile{User: u, IsOnline: s.online(seen)})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list members: %w", err)
	}
	return out, total, nil
}

// scanFunc adapts a function to the Scan interface scanUser reads from.
type scanFunc func(dst ...any) error

func (f scanFunc) Scan(dst ...any) error { return f(dst...) }

// prefixed qualifies every column of a comma-separated list with p.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// escapeLike escapes LIKE wildcards in s (escape character \).
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
