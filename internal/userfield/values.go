package userfield

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/user"
)

// Value is one custom-field value a client sends: the field by _id or key
// (case-insensitive) and its value (nil clears it).
type Value struct {
	FieldIDOrName string `json:"fieldIdorName"`
	Value         any    `json:"value"`
}

// History is one change of one user's value of one field.
type History struct {
	ID          string `json:"_id"`
	CommunityID string `json:"communityId"`
	FieldID     string `json:"fieldId"`
	// Field is the field's key.
	Field  string `json:"field"`
	UserID string `json:"userId"`
	// OldValue and NewValue are typed values; nil when the user had none
	// before or the change cleared it.
	OldValue  any        `json:"oldValue"`
	NewValue  any        `json:"newValue"`
	ChangedBy Actor      `json:"changedBy"`
	Source    string     `json:"source"`
	CreatedAt jsonx.Time `json:"createdAt"`
}

var actorKinds = []string{ActorAPIKey, ActorUser, ActorSystem, ActorWebhook, ActorImport}

// maxSourceLen bounds a history row's source label.
const maxSourceLen = 50

// SetValuesTx sets userID's values in tx: each field is resolved among the
// community's live fields by _id or key, every value is validated against
// its field's type (an Invalid error names customFields[i].fieldIdorName or
// customFields[i].value for each offender, and nothing is written), then
// each actual change writes the value and a history row, and one
// user.fields.updated event lists them. Values equal to the current ones
// change nothing. The caller vouches that userID is a live member.
func (s *Service) SetValuesTx(ctx context.Context, tx *db.Tx, communityID, userID string, vals []Value, actor Actor, source string) error {
	_, err := s.setValues(ctx, tx, communityID, userID, vals, actor, source, func(i int, part string) string {
		return fmt.Sprintf("customFields[%d].%s", i, part)
	})
	return err
}

// change is one value to write.
type change struct {
	field Field
	clear bool
	st    Stored
}

// setValues is SetValuesTx naming offending input with name(i, part), part
// being "fieldIdorName" or "value"; it returns the history rows written.
func (s *Service) setValues(ctx context.Context, tx *db.Tx, communityID, userID string, vals []Value, actor Actor,
	source string, name func(i int, part string) string) ([]History, error) {
	if !containsKind(actor.Kind) {
		return nil, fmt.Errorf("set user field values: unknown actor kind %q", actor.Kind)
	}
	if utf8.RuneCountInString(source) > maxSourceLen {
		return nil, fmt.Errorf("set user field values: source longer than %d characters", maxSourceLen)
	}
	var (
		v       errs.Validator
		changes []change
		seen    = map[string]int{}
	)
	for i, val := range vals {
		f, err := resolve(ctx, tx, communityID, val.FieldIDOrName, false)
		if errs.KindOf(err) == errs.NotFound {
			v.Add(name(i, "fieldIdorName"), "is not the _id or key of a user field of this community")
			continue
		}
		if err != nil {
			return nil, err
		}
		if j, dup := seen[f.ID]; dup {
			v.Add(name(i, "fieldIdorName"), "names the same field as entry %d", j)
			continue
		}
		seen[f.ID] = i
		if val.Value == nil {
			if f.Required {
				v.Add(name(i, "value"), "is required for %s and cannot be cleared", f.Key)
			}
			changes = append(changes, change{field: f, clear: true})
			continue
		}
		st, err := Parse(f.Type, f.Options, val.Value)
		if err != nil {
			v.Add(name(i, "value"), "%s", err.Error())
			continue
		}
		changes = append(changes, change{field: f, st: st})
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if len(changes) == 0 {
		return nil, nil
	}
	// One value writer per community at a time (the lock the outbox takes
	// anyway), so each history row's old value is the previous row's new
	// value and history sequence numbers rise in commit order.
	if err := event.LockCommunity(ctx, tx, communityID); err != nil {
		return nil, fmt.Errorf("set user field values: %w", err)
	}
	now := s.d.Clock.Now()
	var written []History
	for _, c := range changes {
		h, changed, err := s.writeValue(ctx, tx, communityID, userID, c, actor, source, now)
		if err != nil {
			return nil, err
		}
		if changed {
			written = append(written, h)
		}
	}
	if len(written) == 0 {
		return nil, nil
	}
	type item struct {
		FieldID  string `json:"fieldId"`
		Field    string `json:"field"`
		OldValue any    `json:"oldValue"`
		NewValue any    `json:"newValue"`
	}
	items := make([]item, len(written))
	for i, h := range written {
		items[i] = item{FieldID: h.FieldID, Field: h.Field, OldValue: h.OldValue, NewValue: h.NewValue}
	}
	err := s.d.Events.Append(ctx, tx, communityID, "user.fields.updated", map[string]any{
		"communityId": communityID, "userId": userID, "changes": items, "changedBy": actor, "source": source,
	})
	if err != nil {
		return nil, err
	}
	return written, nil
}

func containsKind(k string) bool {
	for _, a := range actorKinds {
		if a == k {
			return true
		}
	}
	return false
}

// writeValue applies one change unless it equals the current value.
func (s *Service) writeValue(ctx context.Context, tx *db.Tx, communityID, userID string, c change, actor Actor, source string,
	now time.Time) (History, bool, error) {
	var old sql.NullString
	err := tx.QueryRow(ctx, "SELECT value FROM user_field_values WHERE field_id = ? AND user_id = ?"+tx.DB().ForUpdate(),
		c.field.ID, userID).Scan(&old)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return History{}, false, fmt.Errorf("read user field value: %w", err)
	}
	var newJSON sql.NullString
	if c.clear {
		if !old.Valid {
			return History{}, false, nil
		}
		if _, err := tx.Exec(ctx, "DELETE FROM user_field_values WHERE field_id = ? AND user_id = ?", c.field.ID, userID); err != nil {
			return History{}, false, fmt.Errorf("clear user field value: %w", err)
		}
	} else {
		if old.Valid && old.String == c.st.JSON {
			return History{}, false, nil
		}
		newJSON = sql.NullString{String: c.st.JSON, Valid: true}
		_, err := tx.Exec(ctx, `INSERT INTO user_field_values (community_id, field_id, user_id, value, text_value, num_value, time_value, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (field_id, user_id) DO UPDATE SET value = excluded.value,
			text_value = excluded.text_value, num_value = excluded.num_value, time_value = excluded.time_value, updated_at = excluded.updated_at`,
			communityID, c.field.ID, userID, c.st.JSON, c.st.Text, c.st.Num, c.st.Time, now.UnixMilli())
		if err != nil {
			return History{}, false, fmt.Errorf("write user field value: %w", err)
		}
	}
	h := History{ID: id.New(now), CommunityID: communityID, FieldID: c.field.ID, Field: c.field.Key, UserID: userID,
		OldValue: nullJSON(old), NewValue: nullJSON(newJSON), ChangedBy: actor, Source: source, CreatedAt: jsonx.At(now)}
	if _, err := tx.Exec(ctx, `INSERT INTO user_field_history (id, community_id, field_id, user_id, old_value, new_value,
		changed_by_kind, changed_by, source, created_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
		(SELECT COALESCE(MAX(seq), 0) + 1 FROM user_field_history WHERE community_id = ?))`,
		h.ID, communityID, c.field.ID, userID, old, newJSON, actor.Kind, actor.ID, source, now.UnixMilli(), communityID); err != nil {
		return History{}, false, fmt.Errorf("write user field history: %w", err)
	}
	return h, true, nil
}

// ValuesOf returns userID's values of community's live fields keyed by
// field key, typed (numbers, booleans, dates as RFC 3339 strings, text).
// A field the user holds no value of shows its default, when it has one.
func (s *Service) ValuesOf(ctx context.Context, communityID, userID string) (map[string]any, error) {
	all, err := s.ValuesOfMany(ctx, communityID, []string{userID})
	if err != nil {
		return nil, err
	}
	return all[userID], nil
}

// ValuesOfMany is ValuesOf for several users at once, keyed by user _id;
// every user asked for has an entry.
func (s *Service) ValuesOfMany(ctx context.Context, communityID string, userIDs []string) (map[string]map[string]any, error) {
	out := make(map[string]map[string]any, len(userIDs))
	for _, u := range userIDs {
		out[u] = map[string]any{}
	}
	if len(userIDs) == 0 {
		return out, nil
	}
	fields, err := s.d.DB.Query(ctx, `SELECT f.id, f.field, f.default_value FROM user_fields f
		WHERE f.community_id = ? AND f.deleted_at IS NULL`, communityID)
	if err != nil {
		return nil, fmt.Errorf("read user fields: %w", err)
	}
	keys := map[string]string{}
	defaults := map[string]sql.NullString{}
	for fields.Next() {
		var (
			id, key string
			def     sql.NullString
		)
		if err := fields.Scan(&id, &key, &def); err != nil {
			fields.Close()
			return nil, fmt.Errorf("scan user field: %w", err)
		}
		keys[id], defaults[id] = key, def
	}
	fields.Close()
	if err := fields.Err(); err != nil {
		return nil, fmt.Errorf("read user fields: %w", err)
	}
	args := []any{communityID}
	for _, u := range userIDs {
		args = append(args, u)
	}
	rows, err := s.d.DB.Query(ctx, `SELECT v.user_id, v.field_id, v.value FROM user_field_values v
		WHERE v.community_id = ? AND v.user_id IN `+db.In(len(userIDs)), args...)
	if err != nil {
		return nil, fmt.Errorf("read user field values: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			userID, fieldID string
			value           sql.NullString
		)
		if err := rows.Scan(&userID, &fieldID, &value); err != nil {
			return nil, fmt.Errorf("scan user field value: %w", err)
		}
		if key, live := keys[fieldID]; live && value.Valid {
			out[userID][key] = nullJSON(value)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read user field values: %w", err)
	}
	for id, key := range keys {
		if def := defaults[id]; def.Valid {
			for _, vals := range out {
				if _, set := vals[key]; !set {
					vals[key] = nullJSON(def)
				}
			}
		}
	}
	return out, nil
}

// HistoryInput is an explicit value change as a client sends it: the field
// by `fieldId` (an _id or key) or `field` (a key), the value (null clears
// it) and an optional source label (default "api").
type HistoryInput struct {
	FieldID jsonx.Optional[string] `json:"fieldId"`
	Field   jsonx.Optional[string] `json:"field"`
	Value   jsonx.Optional[any]    `json:"value"`
	Source  jsonx.Optional[string] `json:"source"`
}

// CreateHistory sets one value of userID (a live member's _id) and returns
// the history row written, with created true. When the value equals the
// current one nothing is written; it returns the row that set the current
// value (nil when there is none) and created false.
func (s *Service) CreateHistory(ctx context.Context, communityID, userID string, in HistoryInput, actor Actor) (*History, bool, error) {
	if _, _, err := s.d.Users.FindMember(ctx, communityID, userID, user.ByObjectID); err != nil {
		return nil, false, err
	}
	var v errs.Validator
	ref := in.FieldID.Value
	if !in.FieldID.Set || in.FieldID.Null || strings.TrimSpace(ref) == "" {
		ref = in.Field.Value
	}
	v.Check(strings.TrimSpace(ref) != "", "fieldId", "is required: the field's _id or key")
	v.Check(in.Value.Set, "value", "is required (null clears the value)")
	source := "api"
	if in.Source.Set && !in.Source.Null {
		source = strings.TrimSpace(in.Source.Value)
		v.Check(source != "" && utf8.RuneCountInString(source) <= maxSourceLen, "source", "must be 1 to %d characters", maxSourceLen)
	}
	if err := v.Err(); err != nil {
		return nil, false, err
	}
	var (
		written []History
		fieldID string
	)
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		written, err = s.setValues(ctx, tx, communityID, userID, []Value{{FieldIDOrName: ref, Value: in.Value.Value}}, actor, source,
			func(_ int, part string) string {
				if part == "value" {
					return "value"
				}
				return "fieldId"
			})
		if err != nil || len(written) > 0 {
			return err
		}
		f, err := resolve(ctx, tx, communityID, ref, false)
		fieldID = f.ID
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if len(written) > 0 {
		return &written[0], true, nil
	}
	list, _, err := s.Histories(ctx, communityID, HistoryQuery{FieldRef: fieldID, UserID: userID, Limit: 1})
	if err != nil || len(list) == 0 {
		return nil, false, err
	}
	return &list[0], false, nil
}

// HistoryQuery selects history rows of one community; empty members do not
// filter. FieldRef is a field's _id (deleted fields included) or a live
// field's key; UserID a live member's _id. From is inclusive, To exclusive.
type HistoryQuery struct {
	FieldRef    string
	UserID      string
	From, To    *time.Time
	Skip, Limit int
}

// Histories returns the rows q selects, newest first, with their total.
// An unknown field or user is NotFound.
func (s *Service) Histories(ctx context.Context, communityID string, q HistoryQuery) ([]History, int, error) {
	where := " WHERE h.community_id = ?"
	args := []any{communityID}
	if q.FieldRef != "" {
		f, err := resolve(ctx, s.d.DB, communityID, q.FieldRef, true)
		if err != nil {
			return nil, 0, err
		}
		where += " AND h.field_id = ?"
		args = append(args, f.ID)
	}
	if q.UserID != "" {
		u, _, err := s.d.Users.FindMember(ctx, communityID, q.UserID, user.ByObjectID)
		if err != nil {
			return nil, 0, err
		}
		where += " AND h.user_id = ?"
		args = append(args, u.ID)
	}
	if q.From != nil {
		where += " AND h.created_at >= ?"
		args = append(args, q.From.UnixMilli())
	}
	if q.To != nil {
		where += " AND h.created_at < ?"
		args = append(args, q.To.UnixMilli())
	}
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM user_field_history h"+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count user field history: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, `SELECT h.id, h.field_id, f.field, h.user_id, h.old_value, h.new_value, h.changed_by_kind,
		h.changed_by, h.source, h.created_at FROM user_field_history h JOIN user_fields f ON f.id = h.field_id`+where+
		" ORDER BY h.seq DESC LIMIT ? OFFSET ?", append(args, q.Limit, q.Skip)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list user field history: %w", err)
	}
	defer rows.Close()
	out := []History{}
	for rows.Next() {
		var (
			h        = History{CommunityID: communityID}
			old, nw  sql.NullString
			occurred int64
		)
		if err := rows.Scan(&h.ID, &h.FieldID, &h.Field, &h.UserID, &old, &nw, &h.ChangedBy.Kind, &h.ChangedBy.ID, &h.Source,
			&occurred); err != nil {
			return nil, 0, fmt.Errorf("scan user field history: %w", err)
		}
		h.OldValue, h.NewValue = nullJSON(old), nullJSON(nw)
		h.CreatedAt = jsonx.Millis(occurred)
		out = append(out, h)
	}
	return out, total, rows.Err()
}

func nullJSON(s sql.NullString) any {
	if !s.Valid {
		return nil
	}
	return decodeJSON(s.String)
}
