// Package store is the community's rewards store catalogue: the store
// configuration (title, cover, the in-game and premium currency, the store
// widget), categories and products, and the voucher codes uploaded per
// product. It also hands out the building blocks a purchase needs inside its
// own transaction (AssignVoucherTx, ReserveStockTx, ReleaseStockTx); the
// purchase flow itself lives with redemptions.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// Deps are what the store service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
}

// Service holds the rules for the store configuration, categories and
// products.
type Service struct {
	d Deps
}

// NewService returns the store service.
func NewService(d Deps) *Service { return &Service{d: d} }

// Limits on what a store document may hold.
const (
	maxTitleLen   = 32 // documented for the store title
	maxNameLen    = 120
	maxHTMLLen    = 20000
	maxURLLen     = 2048
	maxListItems  = 200
	maxRefLen     = 120
	maxPrice      = 1_000_000_000_000
	maxOrderValue = 1_000_000
)

// nameKey is the form names are compared in: case-insensitive, inner
// whitespace folded.
func nameKey(name string) string {
	return strings.ToLower(strings.Join(strings.Fields(name), " "))
}

// validURL reports whether s is an absolute http(s) URL with a host.
func validURL(s string) bool {
	if len(s) > maxURLLen {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// checkURL validates an image-like field: "" clears it, anything else must
// be an absolute http(s) URL.
func checkURL(v *errs.Validator, field, s string) {
	v.Check(s == "" || validURL(s), field, "must be an absolute http or https URL of at most %d characters, or empty", maxURLLen)
}

// checkText validates a string's length in characters.
func checkText(v *errs.Validator, field, s string, max int) {
	v.Check(utf8.RuneCountInString(s) <= max, field, "must be at most %d characters", max)
}

// notNull records an error for every field sent as JSON null where null
// means nothing.
func notNull(v *errs.Validator, field string, null bool) {
	v.Check(!null, field, "must not be null")
}

// setIf copies a present value into dst.
func setIf[T any](dst *T, o jsonx.Optional[T]) {
	if o.Set && !o.Null {
		*dst = o.Value
	}
}

var langRE = regexp.MustCompile(`^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$`)

// Translation is one translated text: the language code and the text.
type Translation struct {
	Lang  string `json:"lang"`
	Value string `json:"value"`
}

// checkTranslations validates a translation list.
func checkTranslations(v *errs.Validator, field string, list []Translation, max int) {
	v.Check(len(list) <= maxListItems, field, "must hold at most %d translations", maxListItems)
	seen := map[string]bool{}
	for i, t := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		v.Check(langRE.MatchString(t.Lang), f+".lang", "must be a language code such as en or pt-BR")
		v.Check(!seen[strings.ToLower(t.Lang)], f+".lang", "is listed twice")
		seen[strings.ToLower(t.Lang)] = true
		checkText(v, f+".value", t.Value, max)
	}
}

// translate returns the translation of list for lang, or fallback.
func translate(list []Translation, lang, fallback string) string {
	if lang == "" {
		return fallback
	}
	for _, t := range list {
		if strings.EqualFold(t.Lang, lang) && t.Value != "" {
			return t.Value
		}
	}
	// pt-BR falls back to pt.
	if base, _, ok := strings.Cut(lang, "-"); ok {
		return translate(list, base, fallback)
	}
	return fallback
}

// checkLang validates a lang query value ("" means none).
func checkLang(v *errs.Validator, lang string) {
	v.Check(lang == "" || langRE.MatchString(lang), "lang", "must be a language code such as en or pt-BR")
}

// refList validates a list of readable references (role names, tag names,
// usernames).
func refList(v *errs.Validator, field string, list []string) []string {
	v.Check(len(list) <= maxListItems, field, "must hold at most %d entries", maxListItems)
	out := make([]string, 0, len(list))
	for i, s := range list {
		s = strings.TrimSpace(s)
		v.Check(s != "" && utf8.RuneCountInString(s) <= maxRefLen, fmt.Sprintf("%s[%d]", field, i), "must be 1 to %d characters", maxRefLen)
		out = append(out, s)
	}
	return out
}

// idList validates a list of ObjectIds.
func idList(v *errs.Validator, field string, list []string) []string {
	v.Check(len(list) <= maxListItems, field, "must hold at most %d entries", maxListItems)
	out := make([]string, 0, len(list))
	for i, s := range list {
		v.Check(id.Valid(s), fmt.Sprintf("%s[%d]", field, i), "must be a 24-hex ObjectId")
		out = append(out, strings.ToLower(s))
	}
	return out
}

// orEmpty returns list, or an empty list for nil, so JSON shows [].
func orEmpty[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

// appendEvent records typ for the community with payload.
func (s *Service) appendEvent(ctx context.Context, tx *db.Tx, communityID, typ string, payload any) error {
	if err := s.d.Events.Append(ctx, tx, communityID, typ, payload); err != nil {
		return fmt.Errorf("record %s: %w", typ, err)
	}
	return nil
}

// encodeDoc marshals a stored JSON document.
func encodeDoc(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode store document: %w", err)
	}
	return string(b), nil
}
