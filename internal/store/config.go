package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// Cover is the store's cover image per theme.
type Cover struct {
	IsEnabled bool   `json:"isEnabled"`
	Light     string `json:"light"`
	Dark      string `json:"dark"`
}

// Currency names a currency of the community's store and its icon per
// theme: the in-game currency (coins) prices are paid in, or the premium
// currency.
type Currency struct {
	IsEnabled bool   `json:"isEnabled"`
	Name      string `json:"name"`
	Symbol    string `json:"symbol"`
	Light     string `json:"light"`
	Dark      string `json:"dark"`
}

// ConfigI18n controls the translations of the store's title and description.
type ConfigI18n struct {
	IsTranslationEnabled    bool          `json:"isTranslationEnabled"`
	TitleTranslations       []Translation `json:"titleTranslations"`
	DescriptionTranslations []Translation `json:"descriptionTranslations"`
	TranslationPrompt       string        `json:"translationPrompt"`
	TranslationIgnoreList   []string      `json:"translationIgnoreList"`
}

// WidgetSize is the embedded store widget's size.
type WidgetSize struct {
	Mode   string `json:"mode"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// WidgetTheme is the widget's theme for one mode: a theme name and CSS
// colours by role (accent, text, background, divider, shadow).
type WidgetTheme struct {
	Name    string            `json:"name"`
	Palette map[string]string `json:"palette"`
}

// WidgetAppearance is the widget's look.
type WidgetAppearance struct {
	Light             WidgetTheme `json:"light"`
	Dark              WidgetTheme `json:"dark"`
	UseCommunityTheme bool        `json:"useCommunityTheme"`
}

// CallToAction is the widget's button.
type CallToAction struct {
	IsEnabled bool   `json:"isEnabled"`
	Text      string `json:"text"`
	Link      string `json:"link"`
}

// Widget is the store's embeddable widget. APIKey is its embed key, made by
// the server and never written by clients.
type Widget struct {
	IsEnabled            bool             `json:"isEnabled"`
	AllowedDomains       []string         `json:"allowedDomains"`
	AccessMode           string           `json:"accessMode"`
	TestUsers            []string         `json:"testUsers"`
	TestRoles            []string         `json:"testRoles"`
	Size                 WidgetSize       `json:"size"`
	Appearance           WidgetAppearance `json:"appearance"`
	CallToAction         CallToAction     `json:"callToAction"`
	UserIdentifierFields []string         `json:"userIdentifierFields"`
	APIKey               string           `json:"apiKey"`
	CreatedAt            jsonx.Time       `json:"createdAt"`
	UpdatedAt            jsonx.Time       `json:"updatedAt"`
}

// Config is a community's store configuration, one per community.
type Config struct {
	ID              string     `json:"_id"`
	CommunityID     string     `json:"communityID"`
	IsEnabled       bool       `json:"isEnabled"`
	Title           string     `json:"title"`
	Description     string     `json:"description"`
	Cover           Cover      `json:"cover"`
	Currency        Currency   `json:"currency"`
	PremiumCurrency Currency   `json:"premiumCurrency"`
	I18n            ConfigI18n `json:"i18n"`
	Widget          Widget     `json:"widget"`
	CreatedAt       jsonx.Time `json:"createdAt"`
	UpdatedAt       jsonx.Time `json:"updatedAt"`
}

// ConfigFields lists the fields a store-config projection may name.
var ConfigFields = []string{"_id", "communityID", "isEnabled", "title", "description", "cover", "currency",
	"premiumCurrency", "i18n", "widget", "createdAt", "updatedAt"}

// defaultConfig is a community's store before its first update.
func defaultConfig(communityID string, now jsonx.Time, key string) Config {
	palette := func(accent, text, bg, divider, shadow string) map[string]string {
		return map[string]string{"accent": accent, "text": text, "background": bg, "divider": divider, "shadow": shadow}
	}
	return Config{
		ID: id.New(now.Time), CommunityID: communityID, IsEnabled: false, Title: "Rewards Store",
		Currency:        Currency{Name: "Coins", Symbol: "coin"},
		PremiumCurrency: Currency{Name: "Gems", Symbol: "gem"},
		I18n:            ConfigI18n{TitleTranslations: []Translation{}, DescriptionTranslations: []Translation{}, TranslationIgnoreList: []string{}},
		Widget: Widget{
			AllowedDomains: []string{}, AccessMode: "live", TestUsers: []string{}, TestRoles: []string{},
			Size: WidgetSize{Mode: "dynamic", Width: 400, Height: 400},
			Appearance: WidgetAppearance{
				Light: WidgetTheme{Name: "white-smoke", Palette: palette("rgb(108, 92, 231)", "rgb(31, 31, 31)", "rgb(245, 245, 245)", "rgb(224, 224, 224)", "rgba(0, 0, 0, .08)")},
				Dark:  WidgetTheme{Name: "black-beauty", Palette: palette("rgb(3, 169, 244)", "rgb(0, 150, 218)", "rgb(3, 23, 38)", "rgb(19, 71, 95)", "rgba(26, 38, 43, .5)")},
			},
			UserIdentifierFields: []string{}, APIKey: key, CreatedAt: now, UpdatedAt: now,
		},
		CreatedAt: now, UpdatedAt: now,
	}
}

func newWidgetKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make widget key: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// CoverInput is a partial update of the cover; absent fields are kept.
type CoverInput struct {
	IsEnabled *bool   `json:"isEnabled"`
	Light     *string `json:"light"`
	Dark      *string `json:"dark"`
}

// CurrencyInput is a partial update of a currency.
type CurrencyInput struct {
	IsEnabled *bool   `json:"isEnabled"`
	Name      *string `json:"name"`
	Symbol    *string `json:"symbol"`
	Light     *string `json:"light"`
	Dark      *string `json:"dark"`
}

// ConfigI18nInput is a partial update of the translations; lists replace.
type ConfigI18nInput struct {
	IsTranslationEnabled    *bool          `json:"isTranslationEnabled"`
	TitleTranslations       *[]Translation `json:"titleTranslations"`
	DescriptionTranslations *[]Translation `json:"descriptionTranslations"`
	TranslationPrompt       *string        `json:"translationPrompt"`
	TranslationIgnoreList   *[]string      `json:"translationIgnoreList"`
}

// WidgetSizeInput is a partial update of the widget size.
type WidgetSizeInput struct {
	Mode   *string `json:"mode"`
	Width  *int    `json:"width"`
	Height *int    `json:"height"`
}

// WidgetAppearanceInput is a partial update of the widget's look; a mode's
// theme is replaced whole.
type WidgetAppearanceInput struct {
	Light             *WidgetTheme `json:"light"`
	Dark              *WidgetTheme `json:"dark"`
	UseCommunityTheme *bool        `json:"useCommunityTheme"`
}

// CallToActionInput is a partial update of the widget's button.
type CallToActionInput struct {
	IsEnabled *bool   `json:"isEnabled"`
	Text      *string `json:"text"`
	Link      *string `json:"link"`
}

// WidgetInput is a partial update of the widget. ID and APIKey are read
// only: sending them is an error.
type WidgetInput struct {
	ID                   json.RawMessage        `json:"_id"`
	APIKey               json.RawMessage        `json:"apiKey"`
	IsEnabled            *bool                  `json:"isEnabled"`
	AllowedDomains       *[]string              `json:"allowedDomains"`
	AccessMode           *string                `json:"accessMode"`
	TestUsers            *[]string              `json:"testUsers"`
	TestRoles            *[]string              `json:"testRoles"`
	Size                 *WidgetSizeInput       `json:"size"`
	Appearance           *WidgetAppearanceInput `json:"appearance"`
	CallToAction         *CallToActionInput     `json:"callToAction"`
	UserIdentifierFields *[]string              `json:"userIdentifierFields"`
}

// ConfigInput is a partial update of the store configuration: absent
// fields are kept and nested objects merge field by field (lists replace).
// communityID is ignored (it comes from the key); widgetID and widget._id
// are refused.
type ConfigInput struct {
	WidgetID        json.RawMessage                 `json:"widgetID"`
	IsEnabled       jsonx.Optional[bool]            `json:"isEnabled"`
	Title           jsonx.Optional[string]          `json:"title"`
	Description     jsonx.Optional[string]          `json:"description"`
	Cover           jsonx.Optional[CoverInput]      `json:"cover"`
	Currency        jsonx.Optional[CurrencyInput]   `json:"currency"`
	PremiumCurrency jsonx.Optional[CurrencyInput]   `json:"premiumCurrency"`
	I18n            jsonx.Optional[ConfigI18nInput] `json:"i18n"`
	Widget          jsonx.Optional[WidgetInput]     `json:"widget"`
}

func put[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

func (in CurrencyInput) apply(c *Currency) {
	put(&c.IsEnabled, in.IsEnabled)
	put(&c.Name, in.Name)
	put(&c.Symbol, in.Symbol)
	put(&c.Light, in.Light)
	put(&c.Dark, in.Dark)
}

// apply merges in into c and reports fields that may not be written.
func (in ConfigInput) apply(v *errs.Validator, c *Config) (widgetChanged bool) {
	v.Check(len(in.WidgetID) == 0, "widgetID", "is managed by the server and must not be sent")
	for _, o := range []struct {
		field string
		null  bool
	}{{"isEnabled", in.IsEnabled.Null}, {"title", in.Title.Null}, {"description", in.Description.Null}, {"cover", in.Cover.Null},
		{"currency", in.Currency.Null}, {"premiumCurrency", in.PremiumCurrency.Null}, {"i18n", in.I18n.Null}, {"widget", in.Widget.Null}} {
		notNull(v, o.field, o.null)
	}
	setIf(&c.IsEnabled, in.IsEnabled)
	setIf(&c.Title, in.Title)
	setIf(&c.Description, in.Description)
	co := in.Cover.Value
	put(&c.Cover.IsEnabled, co.IsEnabled)
	put(&c.Cover.Light, co.Light)
	put(&c.Cover.Dark, co.Dark)
	in.Currency.Value.apply(&c.Currency)
	in.PremiumCurrency.Value.apply(&c.PremiumCurrency)
	i := in.I18n.Value
	put(&c.I18n.IsTranslationEnabled, i.IsTranslationEnabled)
	put(&c.I18n.TitleTranslations, i.TitleTranslations)
	put(&c.I18n.DescriptionTranslations, i.DescriptionTranslations)
	put(&c.I18n.TranslationPrompt, i.TranslationPrompt)
	put(&c.I18n.TranslationIgnoreList, i.TranslationIgnoreList)
	if !in.Widget.Set || in.Widget.Null {
		return false
	}
	w := in.Widget.Value
	v.Check(len(w.ID) == 0, "widget._id", "is managed by the server and must not be sent")
	v.Check(len(w.APIKey) == 0, "widget.apiKey", "is made by the server and must not be sent")
	cw := &c.Widget
	put(&cw.IsEnabled, w.IsEnabled)
	put(&cw.AllowedDomains, w.AllowedDomains)
	put(&cw.AccessMode, w.AccessMode)
	put(&cw.TestUsers, w.TestUsers)
	put(&cw.TestRoles, w.TestRoles)
	if s := w.Size; s != nil {
		put(&cw.Size.Mode, s.Mode)
		put(&cw.Size.Width, s.Width)
		put(&cw.Size.Height, s.Height)
	}
	if a := w.Appearance; a != nil {
		put(&cw.Appearance.Light, a.Light)
		put(&cw.Appearance.Dark, a.Dark)
		put(&cw.Appearance.UseCommunityTheme, a.UseCommunityTheme)
	}
	if cta := w.CallToAction; cta != nil {
		put(&cw.CallToAction.IsEnabled, cta.IsEnabled)
		put(&cw.CallToAction.Text, cta.Text)
		put(&cw.CallToAction.Link, cta.Link)
	}
	put(&cw.UserIdentifierFields, w.UserIdentifierFields)
	return true
}

var (
	themeNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
	domainRE    = regexp.MustCompile(`^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$`)
)

func checkCurrency(v *errs.Validator, field string, c Currency) {
	v.Check(strings.TrimSpace(c.Name) != "" && len([]rune(c.Name)) <= maxTitleLen, field+".name", "must be 1 to %d characters", maxTitleLen)
	checkText(v, field+".symbol", c.Symbol, 16)
	checkURL(v, field+".light", c.Light)
	checkURL(v, field+".dark", c.Dark)
}

func checkStrings(v *errs.Validator, field string, list []string, max int) {
	v.Check(len(list) <= maxListItems, field, "must hold at most %d entries", maxListItems)
	for i, s := range list {
		v.Check(s != "" && len([]rune(s)) <= max, fmt.Sprintf("%s[%d]", field, i), "must be 1 to %d characters", max)
	}
}

// validate checks a whole configuration after a merge.
func (c *Config) validate(v *errs.Validator) {
	c.Title = strings.TrimSpace(c.Title)
	checkText(v, "title", c.Title, maxTitleLen)
	v.Check(!c.IsEnabled || c.Title != "", "title", "is required when the store is enabled")
	checkText(v, "description", c.Description, maxHTMLLen)
	checkURL(v, "cover.light", c.Cover.Light)
	checkURL(v, "cover.dark", c.Cover.Dark)
	checkCurrency(v, "currency", c.Currency)
	checkCurrency(v, "premiumCurrency", c.PremiumCurrency)
	checkTranslations(v, "i18n.titleTranslations", c.I18n.TitleTranslations, maxTitleLen)
	checkTranslations(v, "i18n.descriptionTranslations", c.I18n.DescriptionTranslations, maxHTMLLen)
	checkText(v, "i18n.translationPrompt", c.I18n.TranslationPrompt, 2000)
	checkStrings(v, "i18n.translationIgnoreList", c.I18n.TranslationIgnoreList, maxRefLen)
	w := &c.Widget
	v.Check(len(w.AllowedDomains) <= maxListItems, "widget.allowedDomains", "must hold at most %d entries", maxListItems)
	for i, d := range w.AllowedDomains {
		v.Check(domainRE.MatchString(d), fmt.Sprintf("widget.allowedDomains[%d]", i), "must be a host name such as example.com")
	}
	v.Check(w.AccessMode == "live" || w.AccessMode == "development", "widget.accessMode", "must be live or development")
	checkStrings(v, "widget.testUsers", w.TestUsers, maxRefLen)
	checkStrings(v, "widget.testRoles", w.TestRoles, maxRefLen)
	v.Check(w.Size.Mode == "dynamic" || w.Size.Mode == "fixed", "widget.size.mode", "must be dynamic or fixed")
	v.Check(w.Size.Width >= 100 && w.Size.Width <= 4000, "widget.size.width", "must be 100 to 4000")
	v.Check(w.Size.Height >= 100 && w.Size.Height <= 4000, "widget.size.height", "must be 100 to 4000")
	for _, m := range []struct {
		field string
		t     WidgetTheme
	}{{"widget.appearance.light", w.Appearance.Light}, {"widget.appearance.dark", w.Appearance.Dark}} {
		v.Check(themeNameRE.MatchString(m.t.Name), m.field+".name", "must be 1 to 40 lowercase letters, digits or hyphens")
		v.Check(len(m.t.Palette) <= 20, m.field+".palette", "must hold at most 20 colours")
		for k, col := range m.t.Palette {
			v.Check(k != "" && len(k) <= 40 && col != "" && len(col) <= 64, m.field+".palette."+k, "must be a CSS colour of at most 64 characters")
		}
	}
	checkText(v, "widget.callToAction.text", w.CallToAction.Text, 64)
	checkURL(v, "widget.callToAction.link", w.CallToAction.Link)
	checkStrings(v, "widget.userIdentifierFields", w.UserIdentifierFields, maxRefLen)
	w.AllowedDomains, w.TestUsers, w.TestRoles = orEmpty(w.AllowedDomains), orEmpty(w.TestUsers), orEmpty(w.TestRoles)
	w.UserIdentifierFields = orEmpty(w.UserIdentifierFields)
	c.I18n.TitleTranslations, c.I18n.DescriptionTranslations = orEmpty(c.I18n.TitleTranslations), orEmpty(c.I18n.DescriptionTranslations)
	c.I18n.TranslationIgnoreList = orEmpty(c.I18n.TranslationIgnoreList)
	for _, t := range []*WidgetTheme{&w.Appearance.Light, &w.Appearance.Dark} {
		if t.Palette == nil {
			t.Palette = map[string]string{}
		}
	}
}

// Localize returns c with title and description in lang when translated.
func (c Config) Localize(lang string) Config {
	c.Title = translate(c.I18n.TitleTranslations, lang, c.Title)
	c.Description = translate(c.I18n.DescriptionTranslations, lang, c.Description)
	return c
}

// configQuery checks a store-config read's fields and lang.
func configQuery(q Query) error {
	var v errs.Validator
	listSpec{selectable: ConfigFields}.checkFields(&v, q)
	checkLang(&v, q.Lang)
	return v.Err()
}

func scanConfig(row *sql.Row) (Config, bool, error) {
	var doc string
	if err := row.Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Config{}, false, nil
		}
		return Config{}, false, fmt.Errorf("read store config: %w", err)
	}
	var c Config
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return Config{}, false, fmt.Errorf("decode store config: %w", err)
	}
	return c, true, nil
}

// configTx returns the community's configuration inside tx, creating the
// default one on first use.
func (s *Service) configTx(ctx context.Context, tx *db.Tx, communityID string) (Config, error) {
	c, ok, err := scanConfig(tx.QueryRow(ctx, "SELECT doc FROM store_configs WHERE community_id = ?"+tx.DB().ForUpdate(), communityID))
	if err != nil || ok {
		return c, err
	}
	key, err := newWidgetKey()
	if err != nil {
		return Config{}, err
	}
	now := jsonx.At(s.d.Clock.Now())
	c = defaultConfig(communityID, now, key)
	doc, err := encodeDoc(c)
	if err != nil {
		return Config{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO store_configs (id, community_id, doc, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (community_id) DO NOTHING`, c.ID, communityID, doc, now.UnixMilli(), now.UnixMilli()); err != nil {
		return Config{}, fmt.Errorf("create store config: %w", err)
	}
	c, _, err = scanConfig(tx.QueryRow(ctx, "SELECT doc FROM store_configs WHERE community_id = ?"+tx.DB().ForUpdate(), communityID))
	return c, err
}

// Config returns the community's store configuration (the defaults until
// the first update), translated to q.Lang. q.Fields is validated here; the
// caller projects.
func (s *Service) Config(ctx context.Context, communityID string, q Query) (Config, error) {
	if err := configQuery(q); err != nil {
		return Config{}, err
	}
	c, ok, err := scanConfig(s.d.DB.QueryRow(ctx, "SELECT doc FROM store_configs WHERE community_id = ?", communityID))
	if err == nil && !ok {
		err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
			c, err = s.configTx(ctx, tx, communityID)
			return err
		})
	}
	if err != nil {
		return Config{}, err
	}
	return c.Localize(q.Lang), nil
}

// UpdateConfig applies a partial update of the store configuration.
func (s *Service) UpdateConfig(ctx context.Context, communityID string, in ConfigInput) (Config, error) {
	var c Config
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if c, err = s.configTx(ctx, tx, communityID); err != nil {
			return err
		}
		var v errs.Validator
		widget := in.apply(&v, &c)
		c.validate(&v)
		if err := v.Err(); err != nil {
			return err
		}
		now := jsonx.At(s.d.Clock.Now())
		c.UpdatedAt = now
		if widget {
			c.Widget.UpdatedAt = now
		}
		doc, err := encodeDoc(c)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE store_configs SET doc = ?, updated_at = ? WHERE community_id = ?", doc, now.UnixMilli(), communityID); err != nil {
			return fmt.Errorf("update store config: %w", err)
		}
		return s.appendEvent(ctx, tx, communityID, "store.config.updated", c)
	})
	return c, err
}
