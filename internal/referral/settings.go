package referral

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/userfield"
)

// Referral mappings: what a new user's `referral` value is matched against.
const (
	// MappingCode matches the referrer's referral code (then, for links made
	// before codes, their externalId, username or numeric id).
	MappingCode = "referralCode"
	// MappingCustomField matches the referrer's value of a custom user field
	// (then their referral code).
	MappingCustomField = "custom-field"
)

// DefaultLinkParam is the query parameter invite links carry the code in.
const DefaultLinkParam = "referral"

// Settings are a community's referral mapping and invite-link bases.
type Settings struct {
	Mapping string `json:"mapping"`
	// FieldName is the custom user field (its key) of MappingCustomField.
	FieldName string `json:"fieldName"`
	// Origin is the brand's sign-up page invite links point to.
	Origin string `json:"origin"`
	// PlatformURL is the community platform's page invite links point to.
	PlatformURL string `json:"platformUrl"`
	// LinkParam is the query parameter that carries the code.
	LinkParam string      `json:"linkParam"`
	UpdatedAt *jsonx.Time `json:"updatedAt"`
}

// SettingsInput changes the settings' fields it sets.
type SettingsInput struct {
	Mapping     jsonx.Optional[string] `json:"mapping"`
	FieldName   jsonx.Optional[string] `json:"fieldName"`
	Origin      jsonx.Optional[string] `json:"origin"`
	PlatformURL jsonx.Optional[string] `json:"platformUrl"`
	LinkParam   jsonx.Optional[string] `json:"linkParam"`
}

var linkParamRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,50}$`)

// checkBase validates an invite-link base: empty, or an absolute http(s) URL.
func checkBase(v *errs.Validator, field, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	v.Check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && len(s) <= 500, field,
		"must be an absolute http(s) URL of at most 500 characters (or empty)")
}

func (s *Service) settings(ctx context.Context, q querier, communityID string) (Settings, error) {
	st := Settings{Mapping: MappingCode, LinkParam: DefaultLinkParam}
	var updated int64
	err := q.QueryRow(ctx, "SELECT mapping, field_name, origin, platform_url, link_param, updated_at FROM referral_settings WHERE community_id = ?",
		communityID).Scan(&st.Mapping, &st.FieldName, &st.Origin, &st.PlatformURL, &st.LinkParam, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("read referral settings: %w", err)
	}
	t := jsonx.Millis(updated)
	st.UpdatedAt = &t
	return st, nil
}

// Settings returns the community's referral settings (defaults until set).
func (s *Service) Settings(ctx context.Context, communityID string) (Settings, error) {
	return s.settings(ctx, s.d.DB, communityID)
}

// UpdateSettings changes the fields in sets. A custom-field mapping needs
// fieldName to name one of the community's custom user fields.
func (s *Service) UpdateSettings(ctx context.Context, communityID string, in SettingsInput) (Settings, error) {
	var st Settings
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := tx.Lock(ctx, "referral-settings:"+communityID); err != nil {
			return err
		}
		var err error
		if st, err = s.settings(ctx, tx, communityID); err != nil {
			return err
		}
		var v errs.Validator
		str := func(o jsonx.Optional[string], dst *string) {
			if o.Set {
				*dst = strings.TrimSpace(o.Value)
			}
		}
		str(in.Mapping, &st.Mapping)
		str(in.FieldName, &st.FieldName)
		str(in.Origin, &st.Origin)
		str(in.PlatformURL, &st.PlatformURL)
		str(in.LinkParam, &st.LinkParam)
		v.Check(st.Mapping == MappingCode || st.Mapping == MappingCustomField, "mapping", "must be %s or %s", MappingCode, MappingCustomField)
		if st.Mapping == MappingCustomField {
			if st.FieldName == "" {
				v.Add("fieldName", "is required when mapping is %s", MappingCustomField)
			} else if _, err := s.fieldID(ctx, tx, communityID, st.FieldName); err != nil {
				if errs.KindOf(err) != errs.Invalid {
					return err
				}
				v.Add("fieldName", "names no custom user field of this community")
			}
		}
		v.Check(len(st.FieldName) <= 100, "fieldName", "must be at most 100 characters")
		checkBase(&v, "origin", st.Origin)
		checkBase(&v, "platformUrl", st.PlatformURL)
		v.Check(linkParamRE.MatchString(st.LinkParam), "linkParam", "must be 1 to 50 letters, digits, '_', '.' or '-'")
		if err := v.Err(); err != nil {
			return err
		}
		now := s.d.Clock.Now()
		t := jsonx.At(now)
		st.UpdatedAt = &t
		if _, err := tx.Exec(ctx, `INSERT INTO referral_settings (community_id, mapping, field_name, origin, platform_url, link_param, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (community_id) DO UPDATE SET mapping = excluded.mapping, field_name = excluded.field_name,
			origin = excluded.origin, platform_url = excluded.platform_url, link_param = excluded.link_param, updated_at = excluded.updated_at`,
			communityID, st.Mapping, st.FieldName, st.Origin, st.PlatformURL, st.LinkParam, now.UnixMilli()); err != nil {
			return fmt.Errorf("write referral settings: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "referral.settings.updated", st)
	})
	if err != nil {
		return Settings{}, err
	}
	return st, nil
}

// fieldKey is the stored key of a custom user field named by its key in
// any case.
func fieldKey(name string) string { return strings.ToLower(userfield.NormaliseKey(name)) }

// fieldID returns the id of the community's live custom user field whose
// key (any case) is name; Invalid when there is none.
func (s *Service) fieldID(ctx context.Context, q querier, communityID, name string) (string, error) {
	var fieldID string
	err := q.QueryRow(ctx, "SELECT id FROM user_fields WHERE community_id = ? AND field_key = ? AND deleted_at IS NULL",
		communityID, fieldKey(name)).Scan(&fieldID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errs.New(errs.Invalid, "Unknown custom field.")
	}
	if err != nil {
		return "", fmt.Errorf("find custom field: %w", err)
	}
	return fieldID, nil
}

// MembersByField returns up to two live members of the community whose
// value of the custom field name is value (two means the value is
// ambiguous); Invalid when the community has no such field.
func (s *Service) MembersByField(ctx context.Context, q querier, communityID, name, value string) ([]string, error) {
	fieldID, err := s.fieldID(ctx, q, communityID, name)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT v.user_id FROM user_field_values v JOIN members m ON m.community_id = v.community_id AND m.user_id = v.user_id
		WHERE v.community_id = ? AND v.field_id = ? AND (v.text_value = ? OR v.value = ?) AND m.deleted_at IS NULL ORDER BY m.created_at, v.user_id LIMIT 2`,
		communityID, fieldID, value, value)
	if err != nil {
		return nil, fmt.Errorf("find members by custom field: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("scan member: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// codeAlphabet avoids look-alike characters (0/O, 1/I/L).
const codeAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// codeLength gives 31^8 (about 8.5e11) codes.
const codeLength = 8

func newCode() string {
	b := make([]byte, codeLength)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = codeAlphabet[int(b[i])%len(codeAlphabet)]
	}
	return string(b)
}

// codeTx returns the member's referral code, making it on first use.
func (s *Service) codeTx(ctx context.Context, tx *db.Tx, communityID, userID string) (string, error) {
	for range 5 {
		var code string
		err := tx.QueryRow(ctx, "SELECT code FROM referral_codes WHERE community_id = ? AND user_id = ?", communityID, userID).Scan(&code)
		if err == nil {
			return code, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("read referral code: %w", err)
		}
		code = newCode()
		// A taken code (or a code made meanwhile) inserts nothing; read again.
		if _, err := tx.Exec(ctx, `INSERT INTO referral_codes (community_id, user_id, code, code_key, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, communityID, userID, code, strings.ToLower(code), s.d.Clock.Now().UnixMilli()); err != nil {
			return "", fmt.Errorf("write referral code: %w", err)
		}
	}
	return "", errors.New("referral code: no free code after 5 tries")
}

// Invite is a member's referral code and links (the summary's invite).
type Invite struct {
	Code        string `json:"code"`
	Origin      string `json:"origin"`
	URL         string `json:"url"`
	PlatformURL string `json:"platformUrl"`
}

// link adds param=code to base ("" when base is "").
func link(base, param, code string) string {
	if base == "" {
		return ""
	}
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set(param, code)
	u.RawQuery = q.Encode()
	return u.String()
}

// inviteTx returns the member's invite: with a custom-field mapping the
// code is their value of that field when they have one, else their referral
// code. The platform link defaults to the community's domain.
func (s *Service) inviteTx(ctx context.Context, tx *db.Tx, st Settings, communityID, userID string) (Invite, error) {
	code, err := s.codeTx(ctx, tx, communityID, userID)
	if err != nil {
		return Invite{}, err
	}
	if st.Mapping == MappingCustomField {
		var v string
		err := tx.QueryRow(ctx, `SELECT COALESCE(v.text_value, v.value) FROM user_field_values v JOIN user_fields f ON f.id = v.field_id
			WHERE f.community_id = ? AND f.field_key = ? AND f.deleted_at IS NULL AND v.user_id = ?`,
			communityID, fieldKey(st.FieldName), userID).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return Invite{}, fmt.Errorf("read referral field: %w", err)
		}
		if strings.TrimSpace(v) != "" {
			code = v
		}
	}
	platform := st.PlatformURL
	if platform == "" {
		var domain sql.NullString
		if err := tx.QueryRow(ctx, "SELECT domain FROM communities WHERE id = ?", communityID).Scan(&domain); err != nil {
			return Invite{}, fmt.Errorf("read community domain: %w", err)
		}
		if domain.Valid && domain.String != "" {
			platform = "https://" + domain.String
		}
	}
	return Invite{Code: code, Origin: st.Origin, URL: link(st.Origin, st.LinkParam, code), PlatformURL: link(platform, st.LinkParam, code)}, nil
}

// ReferrerTx resolves a new user's referral value through the community's
// mapping: a custom-field mapping matches that field's value, then referral
// codes; the default mapping matches referral codes. It returns the
// referrer's id, or "" with final set when nothing else may be tried (a
// custom-field mapping), or "" unset to let the caller try its own
// identifiers. A value several members share is Invalid naming referral.
func (s *Service) ReferrerTx(ctx context.Context, tx *db.Tx, communityID, value string) (userID string, final bool, err error) {
	st, err := s.settings(ctx, tx, communityID)
	if err != nil {
		return "", false, err
	}
	if st.Mapping == MappingCustomField {
		ids, err := s.MembersByField(ctx, tx, communityID, st.FieldName, value)
		if err != nil && errs.KindOf(err) != errs.Invalid {
			return "", false, err
		}
		if len(ids) > 1 {
			var v errs.Validator
			v.Add("referral", "matches several members of this community")
			return "", true, v.Err()
		}
		if len(ids) == 1 {
			return ids[0], true, nil
		}
	}
	err = tx.QueryRow(ctx, `SELECT c.user_id FROM referral_codes c JOIN members m ON m.community_id = c.community_id AND m.user_id = c.user_id
		WHERE c.community_id = ? AND c.code_key = ? AND m.deleted_at IS NULL`, communityID, strings.ToLower(value)).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", st.Mapping == MappingCustomField, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("find referral code: %w", err)
	}
	return userID, true, nil
}

// RecordTx notes that referrerID referred the new member refereeID (the
// membership row already names the referrer) with an outbox event. A
// member cannot refer themselves: that is Invalid naming referral.
func (s *Service) RecordTx(ctx context.Context, tx *db.Tx, communityID, refereeID, referrerID, value string) error {
	if refereeID == referrerID {
		var v errs.Validator
		v.Add("referral", "must name another member (a member cannot refer themselves)")
		return v.Err()
	}
	return s.d.Events.Append(ctx, tx, communityID, EventRecorded, map[string]string{
		"refereeId": refereeID, "referrerId": referrerID, "referral": value, "userId": refereeID, "referredBy": referrerID,
	})
}
