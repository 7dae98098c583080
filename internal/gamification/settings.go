package gamification

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
)

// Rewardable actions: the xp-setting keys (section 04 B and F). Each has an
// XP amount, a coin amount, an on/off switch and a cooldown in seconds.
const (
	ActionPicture            = "picture"
	ActionAboutMe            = "aboutme"
	ActionQuote              = "quote"
	ActionMessage            = "message"
	ActionReply              = "reply"
	ActionReact              = "react"
	ActionObject             = "object"
	ActionAnalysis           = "analysis"
	ActionVisit              = "visit"
	ActionReferral           = "referral"
	ActionComment            = "comment"
	ActionRefer              = "refer"
	ActionTradingDiscussions = "tradingDiscussions"
)

// ActionSocial is counted for activity stats (US5 `socials`) but has no XP
// setting: social-account activity is counted, never rewarded.
const ActionSocial = "social"

// Actions lists every rewardable action, in the documented order.
var Actions = []string{ActionPicture, ActionAboutMe, ActionQuote, ActionMessage, ActionReply, ActionReact, ActionObject,
	ActionAnalysis, ActionVisit, ActionReferral, ActionComment, ActionRefer, ActionTradingDiscussions}

// Bounds of an action's setting.
const (
	maxActionAmount = 1_000_000
	// maxCooldown is 30 days in seconds.
	maxCooldown = 30 * 24 * 3600
)

// ActionSetting is what one action earns. Coins is Rally's addition to the
// documented {enabled, xp, time}; Time is the cooldown in seconds between
// rewarded actions of one member (0: none).
type ActionSetting struct {
	Enabled bool  `json:"enabled"`
	XP      int64 `json:"xp"`
	Coins   int64 `json:"coins"`
	Time    int64 `json:"time"`
}

// XPSetting is the community's XP setting: the master switch and one
// ActionSetting per action. It marshals flat, as documented:
// {"enabled":true,"message":{...},"reply":{...},...}.
type XPSetting struct {
	Enabled bool
	Actions map[string]ActionSetting
}

// MarshalJSON writes the documented flat object.
func (x XPSetting) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(x.Actions)+1)
	for k, v := range x.Actions {
		m[k] = v
	}
	m["enabled"] = x.Enabled
	return json.Marshal(m)
}

// UnmarshalJSON reads the flat object (the stored form).
func (x *XPSetting) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	x.Actions = make(map[string]ActionSetting, len(raw))
	for k, v := range raw {
		if k == "enabled" {
			if err := json.Unmarshal(v, &x.Enabled); err != nil {
				return err
			}
			continue
		}
		var a ActionSetting
		if err := json.Unmarshal(v, &a); err != nil {
			return err
		}
		x.Actions[k] = a
	}
	return nil
}

// Display says where levels and tiers are shown next to usernames.
type Display struct {
	Levels bool `json:"levels"`
	Tiers  bool `json:"tiers"`
}

// TierLevel is one level of a tier: the lifetime XP that reaches it.
type TierLevel struct {
	XP int64 `json:"xp"`
}

// Tier is a named rank with an icon and exactly three levels.
type Tier struct {
	Name   string      `json:"name"`
	Icon   string      `json:"icon"`
	Levels []TierLevel `json:"levels"`
}

// TierSetting is the settings document's tiers object.
type TierSetting struct {
	Enabled bool    `json:"enabled"`
	Display Display `json:"display"`
	Tiers   []Tier  `json:"tiers"`
}

// Settings is the community's gamification settings document, as GA7,
// GA12 and GA13 show it. Badges is kept as stored (the badge settings).
type Settings struct {
	ID        string          `json:"_id"`
	ServerID  string          `json:"serverId"`
	XPSetting XPSetting       `json:"xpSetting"`
	Tiers     TierSetting     `json:"tiers"`
	Badges    json.RawMessage `json:"badges"`
	CreatedAt jsonx.Time      `json:"createdAt"`
	UpdatedAt jsonx.Time      `json:"updatedAt"`
	Version   int64           `json:"__v"`
}

// defaultXPSetting is what a community earns before it configures XP: the
// documented sample's values (message and reply 10 XP, reaction 2, object 30,
// analysis 50, with their cooldowns); actions the sample does not show are
// off with 0 XP. No coins until configured.
func defaultXPSetting() XPSetting {
	x := XPSetting{Enabled: true, Actions: make(map[string]ActionSetting, len(Actions))}
	for _, a := range Actions {
		x.Actions[a] = ActionSetting{}
	}
	x.Actions[ActionPicture] = ActionSetting{XP: 3}
	x.Actions[ActionAboutMe] = ActionSetting{XP: 3}
	x.Actions[ActionQuote] = ActionSetting{XP: 3}
	x.Actions[ActionMessage] = ActionSetting{Enabled: true, XP: 10, Time: 3}
	x.Actions[ActionReply] = ActionSetting{Enabled: true, XP: 10, Time: 3}
	x.Actions[ActionReact] = ActionSetting{Enabled: true, XP: 2, Time: 1}
	x.Actions[ActionObject] = ActionSetting{Enabled: true, XP: 30, Time: 3}
	x.Actions[ActionAnalysis] = ActionSetting{Enabled: true, XP: 50, Time: 3}
	return x
}

func defaultTierSetting() TierSetting {
	return TierSetting{Display: Display{Levels: true, Tiers: true}, Tiers: []Tier{}}
}

const settingsColumns = "id, community_id, xp_setting, tiers, badges, version, created_at, updated_at"

// readSettings returns the stored document, or ok == false when the
// community has none yet.
func readSettings(ctx context.Context, q querier, communityID string, suffix string) (Settings, bool, error) {
	var (
		st                  Settings
		xpRaw, tiers, badge string
		created, updated    int64
	)
	err := q.QueryRow(ctx, "SELECT "+settingsColumns+" FROM gamification_settings WHERE community_id = ?"+suffix, communityID).
		Scan(&st.ID, &st.ServerID, &xpRaw, &tiers, &badge, &st.Version, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Settings{}, false, nil
	}
	if err != nil {
		return Settings{}, false, fmt.Errorf("read gamification settings: %w", err)
	}
	if err := json.Unmarshal([]byte(xpRaw), &st.XPSetting); err != nil {
		return Settings{}, false, fmt.Errorf("decode xp setting: %w", err)
	}
	if err := json.Unmarshal([]byte(tiers), &st.Tiers); err != nil {
		return Settings{}, false, fmt.Errorf("decode tier setting: %w", err)
	}
	// Actions added after the document was written read as their defaults.
	for k, v := range defaultXPSetting().Actions {
		if _, ok := st.XPSetting.Actions[k]; !ok {
			st.XPSetting.Actions[k] = v
		}
	}
	if st.Tiers.Tiers == nil {
		st.Tiers.Tiers = []Tier{}
	}
	st.Badges = json.RawMessage(badge)
	st.CreatedAt, st.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return st, true, nil
}

// current returns the stored document or, when there is none, the defaults
// (not stored).
func (s *Service) current(ctx context.Context, q querier, communityID, suffix string) (Settings, bool, error) {
	st, ok, err := readSettings(ctx, q, communityID, suffix)
	if err != nil || ok {
		return st, ok, err
	}
	now := s.d.Clock.Now()
	return Settings{ID: id.New(now), ServerID: communityID, XPSetting: defaultXPSetting(), Tiers: defaultTierSetting(),
		Badges: json.RawMessage("{}"), CreatedAt: jsonx.At(now), UpdatedAt: jsonx.At(now)}, false, nil
}

// Settings returns the community's settings document (GA7), storing the
// defaults the first time it is read so its _id and createdAt stay stable.
func (s *Service) Settings(ctx context.Context, communityID string) (Settings, error) {
	if st, ok, err := readSettings(ctx, s.d.DB, communityID, ""); err != nil || ok {
		return st, err
	}
	var st Settings
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := lockSettings(ctx, tx, communityID); err != nil {
			return err
		}
		cur, stored, err := s.current(ctx, tx, communityID, tx.DB().ForUpdate())
		if err != nil || stored {
			st = cur
			return err
		}
		st = cur
		return writeSettings(ctx, tx, cur, true)
	})
	return st, err
}

// lockSettings serialises writers of the community's document, the first
// one (which inserts it) included.
func lockSettings(ctx context.Context, tx *db.Tx, communityID string) error {
	return tx.Lock(ctx, "gamification-settings:"+communityID)
}

func writeSettings(ctx context.Context, tx *db.Tx, st Settings, insert bool) error {
	xpRaw, err := json.Marshal(st.XPSetting)
	if err != nil {
		return fmt.Errorf("encode xp setting: %w", err)
	}
	tiers, err := json.Marshal(st.Tiers)
	if err != nil {
		return fmt.Errorf("encode tier setting: %w", err)
	}
	if insert {
		_, err = tx.Exec(ctx, "INSERT INTO gamification_settings ("+settingsColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			st.ID, st.ServerID, string(xpRaw), string(tiers), string(st.Badges), st.Version, st.CreatedAt.UnixMilli(), st.UpdatedAt.UnixMilli())
	} else {
		_, err = tx.Exec(ctx, "UPDATE gamification_settings SET xp_setting = ?, tiers = ?, version = ?, updated_at = ? WHERE community_id = ?",
			string(xpRaw), string(tiers), st.Version, st.UpdatedAt.UnixMilli(), st.ServerID)
	}
	if err != nil {
		return fmt.Errorf("write gamification settings: %w", err)
	}
	return nil
}

// update applies change to the community's document (the defaults when
// none is stored) and stores it with __v raised, emitting
// gamification.settings.updated, all in one transaction.
func (s *Service) update(ctx context.Context, communityID string, change func(st *Settings) error) (Settings, error) {
	var out Settings
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		if err := lockSettings(ctx, tx, communityID); err != nil {
			return err
		}
		st, stored, err := s.current(ctx, tx, communityID, tx.DB().ForUpdate())
		if err != nil {
			return err
		}
		if err := change(&st); err != nil {
			return err
		}
		if stored {
			st.Version++
		}
		st.UpdatedAt = jsonx.At(s.d.Clock.Now())
		if err := writeSettings(ctx, tx, st, !stored); err != nil {
			return err
		}
		out = st
		return s.d.Events.Append(ctx, tx, communityID, "gamification.settings.updated", st)
	})
	return out, err
}

// XPSettingInput is the body of GA12: "enabled" and any action objects
// ({enabled, xp, coins, time}); what is absent keeps its stored value.
type XPSettingInput map[string]json.RawMessage

// actionInput is one action's object in XPSettingInput.
type actionInput struct {
	Enabled json.RawMessage `json:"enabled"`
	XP      json.RawMessage `json:"xp"`
	Coins   json.RawMessage `json:"coins"`
	Time    json.RawMessage `json:"time"`
}

// UpdateXPSetting applies GA12. Every offending field is named
// (message.xp, react.time, ...); unknown keys are ignored.
func (s *Service) UpdateXPSetting(ctx context.Context, communityID string, in XPSettingInput) (Settings, error) {
	return s.update(ctx, communityID, func(st *Settings) error {
		var v errs.Validator
		x := &st.XPSetting
		if raw, ok := in["enabled"]; ok {
			readBool(&v, "enabled", raw, &x.Enabled)
		}
		keys := make([]string, 0, len(in))
		for k := range in {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, known := x.Actions[k]; !known {
				continue
			}
			var ai actionInput
			if err := json.Unmarshal(in[k], &ai); err != nil || !isObject(in[k]) {
				v.Add(k, "must be an object {enabled, xp, coins, time}")
				continue
			}
			a := x.Actions[k]
			readBool(&v, k+".enabled", ai.Enabled, &a.Enabled)
			readInt(&v, k+".xp", ai.XP, maxActionAmount, &a.XP)
			readInt(&v, k+".coins", ai.Coins, maxActionAmount, &a.Coins)
			readInt(&v, k+".time", ai.Time, maxCooldown, &a.Time)
			x.Actions[k] = a
		}
		return v.Err()
	})
}

func isObject(raw json.RawMessage) bool {
	t := strings.TrimSpace(string(raw))
	return strings.HasPrefix(t, "{")
}

// readBool sets *dst from raw when raw is present, naming field otherwise.
func readBool(v *errs.Validator, field string, raw json.RawMessage, dst *bool) {
	if raw == nil {
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil || string(raw) == "null" {
		v.Add(field, "must be a boolean")
	}
}

// readInt sets *dst from raw when raw is present: a whole number from 0 to
// limit.
func readInt(v *errs.Validator, field string, raw json.RawMessage, limit int64, dst *int64) {
	if raw == nil {
		return
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil || string(raw) == "null" || n < 0 || n > limit {
		v.Add(field, "must be a whole number from 0 to %d", limit)
		return
	}
	*dst = n
}

// TierSettingInput is the body of GA13: the documented enabled and display
// switches, and the tier list. Absent fields keep their stored values; a
// sent tier list replaces the stored one.
type TierSettingInput struct {
	Enabled *bool `json:"enabled"`
	Display *struct {
		Levels *bool `json:"levels"`
		Tiers  *bool `json:"tiers"`
	} `json:"display"`
	Tiers *[]TierInput `json:"tiers"`
}

// TierInput is one tier as sent.
type TierInput struct {
	Name   string       `json:"name"`
	Icon   string       `json:"icon"`
	Levels []LevelInput `json:"levels"`
}

// LevelInput is one level as sent.
type LevelInput struct {
	XP *int64 `json:"xp"`
}

// Tier list bounds.
const (
	LevelsPerTier = 3
	maxTiers      = 50
	maxTierName   = 50
	maxIconLen    = 2048
	maxLevelXP    = 1_000_000_000_000
)

// UpdateTierSetting applies GA13. Each tier needs a name (unique,
// case-insensitive) and exactly three levels; level XP thresholds must rise
// strictly across the whole list, and a 400 names the offending level
// (tiers[1].levels[2].xp). Tiers can be enabled only while XP is enabled.
func (s *Service) UpdateTierSetting(ctx context.Context, communityID string, in TierSettingInput) (Settings, error) {
	return s.update(ctx, communityID, func(st *Settings) error {
		var v errs.Validator
		t := &st.Tiers
		if in.Enabled != nil {
			t.Enabled = *in.Enabled
		}
		if in.Display != nil {
			if in.Display.Levels != nil {
				t.Display.Levels = *in.Display.Levels
			}
			if in.Display.Tiers != nil {
				t.Display.Tiers = *in.Display.Tiers
			}
		}
		if in.Tiers != nil {
			t.Tiers = validTiers(&v, *in.Tiers)
		}
		if t.Enabled && !st.XPSetting.Enabled {
			v.Add("enabled", "tiers need the XP system enabled (xp-setting enabled)")
		}
		return v.Err()
	})
}

// validTiers checks the sent list, naming every offending field, and returns
// it in stored form.
func validTiers(v *errs.Validator, in []TierInput) []Tier {
	v.Check(len(in) <= maxTiers, "tiers", "must have at most %d tiers", maxTiers)
	out := make([]Tier, 0, len(in))
	names := map[string]int{}
	prev, prevField := int64(-1), ""
	for i, ti := range in {
		f := fmt.Sprintf("tiers[%d]", i)
		name := strings.TrimSpace(ti.Name)
		if n := utf8.RuneCountInString(name); n == 0 || n > maxTierName {
			v.Add(f+".name", "must be 1 to %d characters", maxTierName)
		} else if j, dup := names[strings.ToLower(name)]; dup {
			v.Add(f+".name", "repeats the name of tiers[%d]", j)
		} else {
			names[strings.ToLower(name)] = i
		}
		v.Check(len(ti.Icon) <= maxIconLen, f+".icon", "must be at most %d characters", maxIconLen)
		v.Check(len(ti.Levels) == LevelsPerTier, f+".levels", "must have exactly %d levels", LevelsPerTier)
		t := Tier{Name: name, Icon: strings.TrimSpace(ti.Icon), Levels: make([]TierLevel, 0, len(ti.Levels))}
		for j, l := range ti.Levels {
			lf := fmt.Sprintf("%s.levels[%d].xp", f, j)
			switch {
			case l.XP == nil:
				v.Add(lf, "is required")
			case *l.XP < 0 || *l.XP > maxLevelXP:
				v.Add(lf, "must be a whole number from 0 to %d", int64(maxLevelXP))
			case *l.XP <= prev:
				v.Add(lf, "must be more than the %d XP of %s", prev, prevField)
			default:
				prev, prevField = *l.XP, strings.TrimSuffix(lf, ".xp")
			}
			if l.XP != nil {
				t.Levels = append(t.Levels, TierLevel{XP: *l.XP})
			}
		}
		out = append(out, t)
	}
	return out
}
