// Package userfield holds a community's custom user fields: their
// definitions (key, name, type, options, default), the values users hold for
// them, and the history of every change to a value.
//
// A field's type is kept as the client spelled it (text, single-line-text,
// numerical, ...) and answered that way; values are validated, stored and
// indexed by the spelling's canonical kind (KindOf). Fields are soft-deleted:
// a deleted field's history stays readable, its values are dropped and its key
// may be reused.
package userfield

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/user"
)

// Deps are what the user-field service needs.
type Deps struct {
	DB    *db.DB
	Clock clock.Clock
	// Events records changes in the writer's transaction; value writes also
	// take its per-community lock (event.LockCommunity).
	Events *event.Outbox
	Users  *user.Store
}

// Service holds the rules for user fields, their values and history.
type Service struct {
	d Deps
}

// NewService returns the user-field service.
func NewService(d Deps) *Service { return &Service{d: d} }

// Actor is who changed something: Kind is "apikey", "user", "system",
// "webhook" or "import"; ID is the key's, user's or job's id ("" when none).
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// Actor kinds.
const (
	ActorAPIKey  = "apikey"
	ActorUser    = "user"
	ActorSystem  = "system"
	ActorWebhook = "webhook"
	ActorImport  = "import"
)

// Creator is the user who created a field, as the docs show it.
type Creator struct {
	ID          string  `json:"_id"`
	NumID       int64   `json:"id"`
	Avatar      *string `json:"avatar"`
	DisplayName string  `json:"displayName"`
	Username    string  `json:"username"`
}

// Field is a user-field definition.
type Field struct {
	ID          string
	CommunityID string
	// Key is the field's key (the API's `field`), unique per community
	// among live fields, compared case-insensitively.
	Key  string
	Name string
	// Type is the canonical kind (KindText, KindNumber, ...).
	Type string
	// TypeLabel is the type as the client spelled it, which the API answers.
	TypeLabel   string
	Description string
	Required    bool
	// Default is the typed default value (nil when none): what a user who
	// never received a value holds.
	Default any
	// Options are a select field's choices (empty for other kinds).
	Options []string
	// Creator is the user who created the field; nil when a partner key did.
	Creator   *Creator
	DeletedAt *time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// fieldJSON is the API form of a field.
type fieldJSON struct {
	ID           string     `json:"_id"`
	CommunityID  string     `json:"communityId"`
	Field        string     `json:"field"`
	Name         string     `json:"name"`
	Type         string     `json:"type"`
	Description  string     `json:"description"`
	Required     bool       `json:"required"`
	DefaultValue any        `json:"defaultValue"`
	Options      []string   `json:"options"`
	Creator      *Creator   `json:"creator"`
	CreatedAt    jsonx.Time `json:"createdAt"`
	UpdatedAt    jsonx.Time `json:"updatedAt"`
}

// MarshalJSON writes the field as the API shows it: `type` in the client's
// spelling, `creator` null for fields a partner key created.
func (f Field) MarshalJSON() ([]byte, error) {
	opts := f.Options
	if opts == nil {
		opts = []string{}
	}
	return json.Marshal(fieldJSON{
		ID: f.ID, CommunityID: f.CommunityID, Field: f.Key, Name: f.Name, Type: f.TypeLabel,
		Description: f.Description, Required: f.Required, DefaultValue: f.Default, Options: opts,
		Creator: f.Creator, CreatedAt: jsonx.At(f.CreatedAt), UpdatedAt: jsonx.At(f.UpdatedAt),
	})
}

// Input is a field definition as a client sends it. On create, `field` may
// be left out (it is derived from `name`); on update `name` and `type` are
// required (the documented full replacement), `field` may not change, and an
// absent extra (description, required, defaultValue, options) is kept while
// null clears it.
type Input struct {
	Field        jsonx.Optional[string]   `json:"field"`
	Name         jsonx.Optional[string]   `json:"name"`
	Type         jsonx.Optional[string]   `json:"type"`
	Description  jsonx.Optional[string]   `json:"description"`
	Required     jsonx.Optional[bool]     `json:"required"`
	DefaultValue jsonx.Optional[any]      `json:"defaultValue"`
	Options      jsonx.Optional[[]string] `json:"options"`
}

// Limits on definitions.
const (
	maxKeyLen         = 50
	maxNameLen        = 100
	maxDescriptionLen = 1000
	maxOptions        = 100
	maxOptionLen      = 100
)

var (
	spacesRE = regexp.MustCompile(`\s+`)
	keyRE    = regexp.MustCompile(`^[\p{L}\p{N}_-]+$`)
)

// NormaliseKey turns a client's field key into its stored form: trimmed,
// each run of whitespace turned into one hyphen ("deposit amount" ->
// "deposit-amount").
func NormaliseKey(s string) string {
	return spacesRE.ReplaceAllString(strings.TrimSpace(s), "-")
}

// deriveKey makes a key from a display name: lower case, spaces as hyphens,
// anything but letters, digits, hyphens and underscores dropped.
func deriveKey(name string) string {
	k := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' {
			return unicode.ToLower(r)
		}
		return -1
	}, NormaliseKey(name))
	k = strings.Trim(k, "-")
	if utf8.RuneCountInString(k) > maxKeyLen {
		k = strings.TrimRight(string([]rune(k)[:maxKeyLen]), "-")
	}
	return k
}

// keyFold is the form keys are compared in.
func keyFold(k string) string { return strings.ToLower(k) }

// apply validates in against cur (the zero Field on create) and returns the
// resulting definition, naming every offending field.
func apply(in Input, cur Field, create bool) (Field, error) {
	var v errs.Validator
	f := cur
	if in.Name.Set && !in.Name.Null {
		f.Name = strings.TrimSpace(in.Name.Value)
		v.Check(f.Name != "" && utf8.RuneCountInString(f.Name) <= maxNameLen, "name", "must be 1 to %d characters", maxNameLen)
	} else {
		v.Add("name", "is required")
	}
	if in.Type.Set && !in.Type.Null {
		kind, ok := KindOf(in.Type.Value)
		if ok {
			f.Type, f.TypeLabel = kind, strings.ToLower(strings.TrimSpace(in.Type.Value))
		} else {
			v.Add("type", "must be one of %s", strings.Join(TypeSpellings, ", "))
		}
	} else {
		v.Add("type", "is required")
	}
	switch {
	case create && in.Field.Set && !in.Field.Null:
		f.Key = NormaliseKey(in.Field.Value)
		v.Check(utf8.RuneCountInString(f.Key) >= 1 && utf8.RuneCountInString(f.Key) <= maxKeyLen && keyRE.MatchString(f.Key),
			"field", "must be 1 to %d letters, digits, hyphens or underscores (spaces become hyphens)", maxKeyLen)
	case create:
		f.Key = deriveKey(f.Name)
		v.Check(f.Key != "" || f.Name == "", "field", "is required when name has no letters or digits")
	case in.Field.Set:
		v.Check(!in.Field.Null && keyFold(NormaliseKey(in.Field.Value)) == keyFold(cur.Key), "field", "cannot be changed")
	}
	if in.Description.Set {
		f.Description = strings.TrimSpace(in.Description.Value)
		v.Check(utf8.RuneCountInString(f.Description) <= maxDescriptionLen, "description", "must be at most %d characters", maxDescriptionLen)
	}
	if in.Required.Set {
		f.Required = in.Required.Value
	}
	optsBad := false
	if in.Options.Set {
		opts, msg := cleanOptions(in.Options.Value)
		if msg != "" {
			v.Add("options", "%s", msg)
			optsBad = true
		}
		f.Options = opts
	}
	if f.Type != "" && !optsBad {
		switch {
		case f.Type == KindSelect && len(f.Options) == 0:
			v.Add("options", "is required for select fields: 1 to %d choices", maxOptions)
		case f.Type != KindSelect && in.Options.Set && len(f.Options) > 0:
			v.Add("options", "only select fields take options")
		case f.Type != KindSelect:
			f.Options = nil
		}
	}
	switch {
	case in.DefaultValue.Set && !in.DefaultValue.Null && f.Type != "":
		st, err := Parse(f.Type, f.Options, in.DefaultValue.Value)
		if err != nil {
			v.Add("defaultValue", "%s", err.Error())
		} else {
			f.Default = st.Typed()
		}
	case in.DefaultValue.Set:
		f.Default = nil
	case f.Default != nil && f.Type != "":
		// A kept default must still fit a changed type or option list.
		if _, err := Parse(f.Type, f.Options, f.Default); err != nil {
			v.Add("defaultValue", "the current default no longer fits: %s; send a new one or null", err.Error())
		}
	}
	return f, v.Err()
}

// cleanOptions trims select options and reports what is wrong with them.
func cleanOptions(in []string) ([]string, string) {
	if len(in) > maxOptions {
		return nil, fmt.Sprintf("must have at most %d choices", maxOptions)
	}
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, o := range in {
		o = strings.TrimSpace(o)
		if o == "" || utf8.RuneCountInString(o) > maxOptionLen {
			return nil, fmt.Sprintf("each choice must be 1 to %d characters", maxOptionLen)
		}
		if seen[strings.ToLower(o)] {
			return nil, fmt.Sprintf("choice %q appears twice", o)
		}
		seen[strings.ToLower(o)] = true
		out = append(out, o)
	}
	return out, ""
}

// querier is what both *db.DB and *db.Tx read with.
type querier interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

const fieldSelect = `SELECT f.id, f.community_id, f.field, f.name, f.type, f.kind, f.description, f.required, f.default_value,
	f.options, f.deleted_at, f.created_at, f.updated_at, u.id, u.seq, u.avatar, u.displayname, u.username
	FROM user_fields f LEFT JOIN users u ON f.creator_kind = 'user' AND u.id = f.creator_id `

func scanField(r interface{ Scan(...any) error }) (Field, error) {
	var (
		f                            Field
		def, avatar, cID, cDN, cUser sql.NullString
		opts                         string
		deleted, cNum                sql.NullInt64
		created, updated             int64
	)
	err := r.Scan(&f.ID, &f.CommunityID, &f.Key, &f.Name, &f.TypeLabel, &f.Type, &f.Description, &f.Required, &def,
		&opts, &deleted, &created, &updated, &cID, &cNum, &avatar, &cDN, &cUser)
	if errors.Is(err, sql.ErrNoRows) {
		return Field{}, errs.NotFoundf("User field not found.")
	}
	if err != nil {
		return Field{}, fmt.Errorf("scan user field: %w", err)
	}
	if def.Valid {
		f.Default = decodeJSON(def.String)
	}
	if err := json.Unmarshal([]byte(opts), &f.Options); err != nil {
		return Field{}, fmt.Errorf("user field %s options: %w", f.ID, err)
	}
	if deleted.Valid {
		t := time.UnixMilli(deleted.Int64).UTC()
		f.DeletedAt = &t
	}
	if cID.Valid {
		f.Creator = &Creator{ID: cID.String, NumID: cNum.Int64, DisplayName: cDN.String, Username: cUser.String}
		if avatar.Valid {
			f.Creator.Avatar = &avatar.String
		}
	}
	f.CreatedAt, f.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return f, nil
}

// resolve finds a field of community by _id or key (case-insensitive). Keys
// name live fields only; an _id also finds a deleted field when
// withDeleted is set (its history stays readable).
func resolve(ctx context.Context, q querier, communityID, ref string, withDeleted bool) (Field, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return Field{}, errs.NotFoundf("User field not found.")
	}
	if id.Valid(ref) {
		live := " AND f.deleted_at IS NULL"
		if withDeleted {
			live = ""
		}
		f, err := scanField(q.QueryRow(ctx, fieldSelect+"WHERE f.community_id = ? AND f.id = ?"+live, communityID, strings.ToLower(ref)))
		if errs.KindOf(err) != errs.NotFound {
			return f, err
		}
	}
	return scanField(q.QueryRow(ctx, fieldSelect+"WHERE f.community_id = ? AND f.field_key = ? AND f.deleted_at IS NULL",
		communityID, keyFold(NormaliseKey(ref))))
}

// Get returns a live field of community by _id or key.
func (s *Service) Get(ctx context.Context, communityID, ref string) (Field, error) {
	return resolve(ctx, s.d.DB, communityID, ref, false)
}

// List returns community's live fields, oldest first, skipping skip and at
// most limit, with the total count.
func (s *Service) List(ctx context.Context, communityID string, skip, limit int) ([]Field, int, error) {
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM user_fields WHERE community_id = ? AND deleted_at IS NULL",
		communityID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count user fields: %w", err)
	}
	out, err := s.query(ctx, fieldSelect+"WHERE f.community_id = ? AND f.deleted_at IS NULL ORDER BY f.created_at, f.id LIMIT ? OFFSET ?",
		communityID, limit, skip)
	return out, total, err
}

// FieldsByKey returns community's live field definitions keyed by
// lower-case key, for filters over custom fields.
func (s *Service) FieldsByKey(ctx context.Context, communityID string) (map[string]Field, error) {
	list, err := s.query(ctx, fieldSelect+"WHERE f.community_id = ? AND f.deleted_at IS NULL", communityID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Field, len(list))
	for _, f := range list {
		out[keyFold(f.Key)] = f
	}
	return out, nil
}

func (s *Service) query(ctx context.Context, q string, args ...any) ([]Field, error) {
	rows, err := s.d.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list user fields: %w", err)
	}
	defer rows.Close()
	out := []Field{}
	for rows.Next() {
		f, err := scanField(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// Create adds a field to community. actor becomes the creator when it is a
// user. A key already used by a live field (any case) is a Conflict.
func (s *Service) Create(ctx context.Context, communityID string, in Input, actor Actor) (Field, error) {
	f, err := apply(in, Field{}, true)
	if err != nil {
		return Field{}, err
	}
	now := s.d.Clock.Now()
	f.ID, f.CommunityID, f.CreatedAt, f.UpdatedAt = id.New(now), communityID, now, now
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		def, opts := storedDefinition(f)
		_, err := tx.Exec(ctx, `INSERT INTO user_fields (id, community_id, field, field_key, name, type, kind, description, required,
			default_value, options, creator_kind, creator_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			f.ID, communityID, f.Key, keyFold(f.Key), f.Name, f.TypeLabel, f.Type, f.Description, f.Required, def, opts,
			actor.Kind, actor.ID, now.UnixMilli(), now.UnixMilli())
		if db.IsUniqueViolation(err) {
			return keyTaken(f.Key)
		}
		if err != nil {
			return fmt.Errorf("insert user field: %w", err)
		}
		// Read back for the creator's profile.
		if f, err = resolve(ctx, tx, communityID, f.ID, false); err != nil {
			return err
		}
		return s.d.Events.Append(ctx, tx, communityID, "user.field.created", f)
	})
	if err != nil {
		return Field{}, err
	}
	return f, nil
}

func keyTaken(key string) error {
	return &errs.Error{Kind: errs.Conflict, Message: fmt.Sprintf("A user field with the key %q already exists.", key),
		Fields: []errs.FieldError{{Field: "field", Message: "is already taken"}}}
}

// storedDefinition returns a field's default (canonical JSON or nil) and
// options (JSON array) as stored.
func storedDefinition(f Field) (*string, string) {
	var def *string
	if f.Default != nil {
		b, _ := json.Marshal(f.Default)
		s := string(b)
		def = &s
	}
	opts := f.Options
	if opts == nil {
		opts = []string{}
	}
	b, _ := json.Marshal(opts)
	return def, string(b)
}

// Update replaces a live field's name and type and applies the extras sent.
// A type change that stored values would not fit (anything but a new
// spelling of the same kind, or text widened to multi-line text) and a
// select option list that drops a choice users hold are Conflicts.
func (s *Service) Update(ctx context.Context, communityID, ref string, in Input) (Field, error) {
	var f Field
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		cur, err := resolve(ctx, tx, communityID, ref, false)
		if err != nil {
			return err
		}
		// Lock the row, then read it again: a concurrent update may have
		// committed in between.
		if _, err := tx.Exec(ctx, "UPDATE user_fields SET updated_at = updated_at WHERE id = ?", cur.ID); err != nil {
			return fmt.Errorf("lock user field: %w", err)
		}
		if cur, err = resolve(ctx, tx, communityID, cur.ID, false); err != nil {
			return err
		}
		if f, err = apply(in, cur, false); err != nil {
			return err
		}
		if err := checkValuesFit(ctx, tx, cur, f); err != nil {
			return err
		}
		now := s.d.Clock.Now()
		f.UpdatedAt = now
		def, opts := storedDefinition(f)
		if _, err := tx.Exec(ctx, `UPDATE user_fields SET name = ?, type = ?, kind = ?, description = ?, required = ?, default_value = ?,
			options = ?, updated_at = ? WHERE id = ?`, f.Name, f.TypeLabel, f.Type, f.Description, f.Required, def, opts, now.UnixMilli(), f.ID); err != nil {
			return fmt.Errorf("update user field: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "user.field.updated", f)
	})
	if err != nil {
		return Field{}, err
	}
	return f, nil
}

// checkValuesFit refuses a definition change that stored values would no
// longer satisfy.
func checkValuesFit(ctx context.Context, tx *db.Tx, cur, next Field) error {
	count := func(q string, args ...any) (int, error) {
		var n int
		if err := tx.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			return 0, fmt.Errorf("count user field values: %w", err)
		}
		return n, nil
	}
	if cur.Type != next.Type && !(cur.Type == KindText && next.Type == KindMultiLine) {
		n, err := count("SELECT COUNT(*) FROM user_field_values WHERE field_id = ?", cur.ID)
		if err != nil || n == 0 {
			return err
		}
		return errs.Conflictf("%d users hold values of this %s field; it cannot become %s.", n, cur.TypeLabel, next.TypeLabel)
	}
	if next.Type != KindSelect {
		return nil
	}
	args := []any{cur.ID}
	marks := make([]string, len(next.Options))
	for i, o := range next.Options {
		marks[i], args = "?", append(args, o)
	}
	n, err := count("SELECT COUNT(*) FROM user_field_values WHERE field_id = ? AND text_value NOT IN ("+strings.Join(marks, ", ")+")", args...)
	if err != nil || n == 0 {
		return err
	}
	return errs.Conflictf("%d users hold a choice this option list drops; keep it or change their values first.", n)
}

// Delete soft-deletes a live field: its history stays readable, users'
// values of it are dropped, and its key is free again.
func (s *Service) Delete(ctx context.Context, communityID, ref string) (Field, error) {
	var f Field
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if f, err = resolve(ctx, tx, communityID, ref, false); err != nil {
			return err
		}
		now := s.d.Clock.Now()
		res, err := tx.Exec(ctx, "UPDATE user_fields SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
			now.UnixMilli(), now.UnixMilli(), f.ID)
		if err != nil {
			return fmt.Errorf("delete user field: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.NotFoundf("User field not found.")
		}
		if _, err := tx.Exec(ctx, "DELETE FROM user_field_values WHERE field_id = ?", f.ID); err != nil {
			return fmt.Errorf("drop user field values: %w", err)
		}
		f.DeletedAt, f.UpdatedAt = &now, now
		return s.d.Events.Append(ctx, tx, communityID, "user.field.deleted", f)
	})
	if err != nil {
		return Field{}, err
	}
	return f, nil
}
