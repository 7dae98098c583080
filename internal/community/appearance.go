package community

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// Preview is the link preview shown when the community's URL is shared.
type Preview struct {
	IsEnabled   bool    `json:"isEnabled"`
	Title       string  `json:"title"`
	Description string  `json:"description"`
	Image       *string `json:"image"`
}

// Meta is the community's meta document: link preview, member-list
// visibility and guest mode. It is its own record with its own id.
type Meta struct {
	ID                 string     `json:"_id"`
	CommunityID        string     `json:"communityID"`
	Preview            Preview    `json:"preview"`
	MembersListVisible bool       `json:"membersListVisible"`
	GuestModeEnabled   bool       `json:"guestModeEnabled"`
	CreatedAt          jsonx.Time `json:"createdAt"`
	UpdatedAt          jsonx.Time `json:"updatedAt"`
}

// Bot is the community bot's profile, shown as the sender of automatic
// messages.
type Bot struct {
	ID          string     `json:"_id"`
	CommunityID string     `json:"communityID"`
	Name        string     `json:"name"`
	Avatar      *string    `json:"avatar"`
	CreatedAt   jsonx.Time `json:"createdAt"`
	UpdatedAt   jsonx.Time `json:"updatedAt"`
}

// Palette is one theme's colours, each a CSS hex (#rgb, #rrggbb, #rrggbbaa)
// or rgb()/rgba() colour.
type Palette struct {
	Accent     string `json:"accent"`
	Text       string `json:"text"`
	Background string `json:"background"`
	Divider    string `json:"divider"`
	Shadow     string `json:"shadow"`
}

// ThemeMode is a named palette for the light or the dark mode.
type ThemeMode struct {
	Name    string  `json:"name"`
	Palette Palette `json:"palette"`
}

// Theme is the community's colour theme, the same vocabulary the store
// widget's appearance uses (theme names and palettes per mode).
type Theme struct {
	ID          string     `json:"_id"`
	CommunityID string     `json:"communityID"`
	Light       ThemeMode  `json:"light"`
	Dark        ThemeMode  `json:"dark"`
	DefaultMode string     `json:"defaultMode"`
	CreatedAt   jsonx.Time `json:"createdAt"`
	UpdatedAt   jsonx.Time `json:"updatedAt"`
}

// defaultTheme is a new community's theme.
func defaultTheme() (ThemeMode, ThemeMode) {
	return ThemeMode{Name: "white-smoke", Palette: Palette{Accent: "#6c5ce7", Text: "#1f1f1f", Background: "#f5f5f5", Divider: "#e0e0e0", Shadow: "rgba(0, 0, 0, 0.08)"}},
		ThemeMode{Name: "black-beauty", Palette: Palette{Accent: "#a29bfe", Text: "#f5f5f5", Background: "#121212", Divider: "#2a2a2a", Shadow: "rgba(0, 0, 0, 0.4)"}}
}

// createAppearance writes a new community's default meta, bot and theme.
func (s *Service) createAppearance(ctx context.Context, tx *db.Tx, c Community) error {
	now := c.CreatedAt.UnixMilli()
	t := s.d.Clock.Now()
	if _, err := tx.Exec(ctx, `INSERT INTO community_meta (id, community_id, preview_enabled, preview_title, preview_description,
		members_list_visible, guest_mode_enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id.New(t), c.ID, false, c.Name, "", true, false, now, now); err != nil {
		return fmt.Errorf("insert community meta: %w", err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO community_bot (id, community_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
		id.New(t), c.ID, botName(c.Name), now, now); err != nil {
		return fmt.Errorf("insert community bot: %w", err)
	}
	light, dark := defaultTheme()
	doc, _ := json.Marshal(themeDoc{Light: light, Dark: dark, DefaultMode: "light"})
	if _, err := tx.Exec(ctx, "INSERT INTO community_theme (id, community_id, theme, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
		id.New(t), c.ID, string(doc), now, now); err != nil {
		return fmt.Errorf("insert community theme: %w", err)
	}
	return nil
}

// botName is the default bot name for a community, kept within the name limit.
func botName(community string) string {
	r := []rune(community)
	if len(r) > maxNameLen-4 {
		r = r[:maxNameLen-4]
	}
	return string(r) + " Bot"
}

const (
	maxTitleLen       = 120
	maxDescriptionLen = 500
	maxURLLen         = 2048
)

// validURL reports whether s is an absolute http(s) URL with a host.
func validURL(s string) bool {
	if len(s) > maxURLLen {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// checkImage validates an optional image URL field: null clears it, a
// string must be an absolute http(s) URL.
func checkImage(v *errs.Validator, field string, o jsonx.Optional[string]) {
	if o.Set && !o.Null {
		v.Check(validURL(o.Value), field, "must be an absolute http or https URL of at most %d characters", maxURLLen)
	}
}

// PreviewInput is a partial update of the link preview: sub-fields merge.
type PreviewInput struct {
	IsEnabled   jsonx.Optional[bool]   `json:"isEnabled"`
	Title       jsonx.Optional[string] `json:"title"`
	Description jsonx.Optional[string] `json:"description"`
	Image       jsonx.Optional[string] `json:"image"`
}

// MetaInput is a partial update of the meta document.
type MetaInput struct {
	Preview            jsonx.Optional[PreviewInput] `json:"preview"`
	MembersListVisible jsonx.Optional[bool]         `json:"membersListVisible"`
	GuestModeEnabled   jsonx.Optional[bool]         `json:"guestModeEnabled"`
}

func (in *MetaInput) validate() error {
	var v errs.Validator
	v.Check(!in.Preview.Null, "preview", "must be an object")
	v.Check(!in.MembersListVisible.Null, "membersListVisible", "must be a boolean")
	v.Check(!in.GuestModeEnabled.Null, "guestModeEnabled", "must be a boolean")
	p := &in.Preview.Value
	v.Check(!p.IsEnabled.Null, "preview.isEnabled", "must be a boolean")
	v.Check(!p.Title.Null && utf8.RuneCountInString(p.Title.Value) <= maxTitleLen, "preview.title", "must be a string of at most %d characters", maxTitleLen)
	v.Check(!p.Description.Null && utf8.RuneCountInString(p.Description.Value) <= maxDescriptionLen, "preview.description",
		"must be a string of at most %d characters", maxDescriptionLen)
	checkImage(&v, "preview.image", p.Image)
	return v.Err()
}

const metaColumns = `id, community_id, preview_enabled, preview_title, preview_description, preview_image,
	members_list_visible, guest_mode_enabled, created_at, updated_at`

func scanMeta(r interface{ Scan(...any) error }) (Meta, error) {
	var (
		m                Meta
		image            sql.NullString
		created, updated int64
	)
	err := r.Scan(&m.ID, &m.CommunityID, &m.Preview.IsEnabled, &m.Preview.Title, &m.Preview.Description, &image,
		&m.MembersListVisible, &m.GuestModeEnabled, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Meta{}, errs.NotFoundf("Community not found.")
	}
	if err != nil {
		return Meta{}, fmt.Errorf("scan community meta: %w", err)
	}
	if image.Valid {
		m.Preview.Image = &image.String
	}
	m.CreatedAt, m.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return m, nil
}

// Meta returns the community's meta document.
func (s *Service) Meta(ctx context.Context, communityID string) (Meta, error) {
	return scanMeta(s.d.DB.QueryRow(ctx, "SELECT "+metaColumns+" FROM community_meta WHERE community_id = ?", communityID))
}

// UpdateMeta applies a partial update; preview sub-fields merge.
func (s *Service) UpdateMeta(ctx context.Context, communityID string, in MetaInput) (Meta, error) {
	if err := in.validate(); err != nil {
		return Meta{}, err
	}
	var m Meta
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		m, err = scanMeta(tx.QueryRow(ctx, "SELECT "+metaColumns+" FROM community_meta WHERE community_id = ?"+tx.DB().ForUpdate(), communityID))
		if err != nil {
			return err
		}
		p := in.Preview.Value
		setIf(&m.Preview.IsEnabled, p.IsEnabled)
		setIf(&m.Preview.Title, p.Title)
		setIf(&m.Preview.Description, p.Description)
		setNullable(&m.Preview.Image, p.Image)
		setIf(&m.MembersListVisible, in.MembersListVisible)
		setIf(&m.GuestModeEnabled, in.GuestModeEnabled)
		now := s.d.Clock.Now()
		m.UpdatedAt = jsonx.At(now)
		if _, err := tx.Exec(ctx, `UPDATE community_meta SET preview_enabled = ?, preview_title = ?, preview_description = ?,
			preview_image = ?, members_list_visible = ?, guest_mode_enabled = ?, updated_at = ? WHERE id = ?`,
			m.Preview.IsEnabled, m.Preview.Title, m.Preview.Description, m.Preview.Image, m.MembersListVisible,
			m.GuestModeEnabled, now.UnixMilli(), m.ID); err != nil {
			return fmt.Errorf("update community meta: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "community.meta.updated", m)
	})
	return m, err
}

// setIf copies a present value into dst.
func setIf[T any](dst *T, o jsonx.Optional[T]) {
	if o.Set && !o.Null {
		*dst = o.Value
	}
}

// setNullable copies a present value into dst, clearing it on null.
func setNullable[T any](dst **T, o jsonx.Optional[T]) {
	if !o.Set {
		return
	}
	if o.Null {
		*dst = nil
		return
	}
	v := o.Value
	*dst = &v
}

// BotInput is a partial update of the bot profile; a null avatar clears it.
type BotInput struct {
	Name   jsonx.Optional[string] `json:"name"`
	Avatar jsonx.Optional[string] `json:"avatar"`
}

func (in *BotInput) validate() error {
	var v errs.Validator
	if in.Name.Set {
		in.Name.Value = strings.TrimSpace(in.Name.Value)
		v.Check(!in.Name.Null && in.Name.Value != "" && utf8.RuneCountInString(in.Name.Value) <= maxNameLen,
			"name", "must be 1 to %d characters", maxNameLen)
	}
	checkImage(&v, "avatar", in.Avatar)
	return v.Err()
}

func scanBot(r interface{ Scan(...any) error }) (Bot, error) {
	var (
		b                Bot
		avatar           sql.NullString
		created, updated int64
	)
	err := r.Scan(&b.ID, &b.CommunityID, &b.Name, &avatar, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Bot{}, errs.NotFoundf("Community not found.")
	}
	if err != nil {
		return Bot{}, fmt.Errorf("scan community bot: %w", err)
	}
	if avatar.Valid {
		b.Avatar = &avatar.String
	}
	b.CreatedAt, b.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return b, nil
}

const botColumns = "id, community_id, name, avatar, created_at, updated_at"

// Bot returns the community bot's profile.
func (s *Service) Bot(ctx context.Context, communityID string) (Bot, error) {
	return scanBot(s.d.DB.QueryRow(ctx, "SELECT "+botColumns+" FROM community_bot WHERE community_id = ?", communityID))
}

// UpdateBot applies a partial update of the bot profile.
func (s *Service) UpdateBot(ctx context.Context, communityID string, in BotInput) (Bot, error) {
	if err := in.validate(); err != nil {
		return Bot{}, err
	}
	var b Bot
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		b, err = scanBot(tx.QueryRow(ctx, "SELECT "+botColumns+" FROM community_bot WHERE community_id = ?"+tx.DB().ForUpdate(), communityID))
		if err != nil {
			return err
		}
		setIf(&b.Name, in.Name)
		setNullable(&b.Avatar, in.Avatar)
		now := s.d.Clock.Now()
		b.UpdatedAt = jsonx.At(now)
		if _, err := tx.Exec(ctx, "UPDATE community_bot SET name = ?, avatar = ?, updated_at = ? WHERE id = ?",
			b.Name, b.Avatar, now.UnixMilli(), b.ID); err != nil {
			return fmt.Errorf("update community bot: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "community.bot.updated", b)
	})
	return b, err
}

// themeDoc is the stored part of a Theme.
type themeDoc struct {
	Light       ThemeMode `json:"light"`
	Dark        ThemeMode `json:"dark"`
	DefaultMode string    `json:"defaultMode"`
}

// PaletteInput is a partial update of a palette.
type PaletteInput struct {
	Accent     jsonx.Optional[string] `json:"accent"`
	Text       jsonx.Optional[string] `json:"text"`
	Background jsonx.Optional[string] `json:"background"`
	Divider    jsonx.Optional[string] `json:"divider"`
	Shadow     jsonx.Optional[string] `json:"shadow"`
}

// ThemeModeInput is a partial update of one mode's theme.
type ThemeModeInput struct {
	Name    jsonx.Optional[string]       `json:"name"`
	Palette jsonx.Optional[PaletteInput] `json:"palette"`
}

// ThemeInput is a partial update of the theme colours; nested fields merge.
type ThemeInput struct {
	Light       jsonx.Optional[ThemeModeInput] `json:"light"`
	Dark        jsonx.Optional[ThemeModeInput] `json:"dark"`
	DefaultMode jsonx.Optional[string]         `json:"defaultMode"`
}

var (
	hexColorRE  = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$`)
	rgbColorRE  = regexp.MustCompile(`^rgba?\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*(?:,\s*(?:0|1|0?\.\d+|1\.0+)\s*)?\)$`)
	themeNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
)

// validColor reports whether s is a hex colour or an rgb()/rgba() colour
// whose channels are 0-255.
func validColor(s string) bool {
	if hexColorRE.MatchString(s) {
		return true
	}
	if !rgbColorRE.MatchString(s) {
		return false
	}
	var r, g, b int
	inner := s[strings.IndexByte(s, '(')+1 : len(s)-1]
	if _, err := fmt.Sscanf(strings.ReplaceAll(inner, " ", ""), "%d,%d,%d", &r, &g, &b); err != nil {
		return false
	}
	return r <= 255 && g <= 255 && b <= 255
}

func (in *ThemeModeInput) validate(v *errs.Validator, prefix string) {
	if in.Name.Set {
		v.Check(!in.Name.Null && themeNameRE.MatchString(in.Name.Value), prefix+".name",
			"must be 1 to 40 lowercase letters, digits or hyphens")
	}
	if in.Palette.Null {
		v.Add(prefix+".palette", "must be an object")
	}
	p := in.Palette.Value
	for _, c := range []struct {
		field string
		o     jsonx.Optional[string]
	}{{"accent", p.Accent}, {"text", p.Text}, {"background", p.Background}, {"divider", p.Divider}, {"shadow", p.Shadow}} {
		if c.o.Set {
			v.Check(!c.o.Null && validColor(c.o.Value), prefix+".palette."+c.field, "must be a hex colour (#rrggbb) or rgb()/rgba() colour")
		}
	}
}

func (in *ThemeInput) validate() error {
	var v errs.Validator
	v.Check(!in.Light.Null, "light", "must be an object")
	v.Check(!in.Dark.Null, "dark", "must be an object")
	in.Light.Value.validate(&v, "light")
	in.Dark.Value.validate(&v, "dark")
	if in.DefaultMode.Set {
		v.Check(in.DefaultMode.Value == "light" || in.DefaultMode.Value == "dark", "defaultMode", "must be light or dark")
	}
	return v.Err()
}

func (in ThemeModeInput) apply(m *ThemeMode) {
	setIf(&m.Name, in.Name)
	p := in.Palette.Value
	setIf(&m.Palette.Accent, p.Accent)
	setIf(&m.Palette.Text, p.Text)
	setIf(&m.Palette.Background, p.Background)
	setIf(&m.Palette.Divider, p.Divider)
	setIf(&m.Palette.Shadow, p.Shadow)
}

func scanTheme(r interface{ Scan(...any) error }) (Theme, error) {
	var (
		t                Theme
		doc              string
		created, updated int64
	)
	err := r.Scan(&t.ID, &t.CommunityID, &doc, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Theme{}, errs.NotFoundf("Community not found.")
	}
	if err != nil {
		return Theme{}, fmt.Errorf("scan community theme: %w", err)
	}
	var d themeDoc
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return Theme{}, fmt.Errorf("decode community theme %s: %w", t.ID, err)
	}
	t.Light, t.Dark, t.DefaultMode = d.Light, d.Dark, d.DefaultMode
	t.CreatedAt, t.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return t, nil
}

const themeColumns = "id, community_id, theme, created_at, updated_at"

// Theme returns the community's theme colours.
func (s *Service) Theme(ctx context.Context, communityID string) (Theme, error) {
	return scanTheme(s.d.DB.QueryRow(ctx, "SELECT "+themeColumns+" FROM community_theme WHERE community_id = ?", communityID))
}

// UpdateTheme applies a partial update of the theme colours.
func (s *Service) UpdateTheme(ctx context.Context, communityID string, in ThemeInput) (Theme, error) {
	if err := in.validate(); err != nil {
		return Theme{}, err
	}
	var t Theme
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		t, err = scanTheme(tx.QueryRow(ctx, "SELECT "+themeColumns+" FROM community_theme WHERE community_id = ?"+tx.DB().ForUpdate(), communityID))
		if err != nil {
			return err
		}
		in.Light.Value.apply(&t.Light)
		in.Dark.Value.apply(&t.Dark)
		setIf(&t.DefaultMode, in.DefaultMode)
		now := s.d.Clock.Now()
		t.UpdatedAt = jsonx.At(now)
		doc, err := json.Marshal(themeDoc{Light: t.Light, Dark: t.Dark, DefaultMode: t.DefaultMode})
		if err != nil {
			return fmt.Errorf("encode theme: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE community_theme SET theme = ?, updated_at = ? WHERE id = ?", string(doc), now.UnixMilli(), t.ID); err != nil {
			return fmt.Errorf("update community theme: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "community.theme.updated", t)
	})
	return t, err
}
