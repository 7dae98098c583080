package gamification

import (
	"context"
	"database/sql"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/xp"
)

// Level is where a lifetime XP total stands in the community's tier list.
// The zero Level (Index 0) means below the first level, or no tiers.
type Level struct {
	TierName string `json:"tierName"`
	TierIcon string `json:"tierIcon"`
	// Tier is the tier's position, from 1.
	Tier int `json:"tier"`
	// Level is the level within the tier, 1 to 3.
	Level int `json:"level"`
	// Index is the level's position across all tiers, from 1.
	Index int `json:"index"`
}

// levelIn returns the highest level whose threshold total reaches.
func levelIn(tiers []Tier, total int64) Level {
	var out Level
	index := 0
	for ti, t := range tiers {
		for li, l := range t.Levels {
			index++
			if total < l.XP {
				return out
			}
			out = Level{TierName: t.Name, TierIcon: t.Icon, Tier: ti + 1, Level: li + 1, Index: index}
		}
	}
	return out
}

// LevelOf returns the level and tier that lifetime XP total reaches in the
// community's tier list (whether or not tiers are displayed), for user data
// and leaderboards.
func (s *Service) LevelOf(ctx context.Context, communityID string, total int64) (Level, error) {
	st, _, err := s.current(ctx, s.d.DB, communityID, "")
	if err != nil {
		return Level{}, err
	}
	return levelIn(st.Tiers.Tiers, total), nil
}

// LevelOfTx is LevelOf read through q (a transaction the caller holds), so
// a caller inside a transaction needs no second connection.
func (s *Service) LevelOfTx(ctx context.Context, q interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}, communityID string, total int64) (Level, error) {
	st, _, err := s.current(ctx, q, communityID, "")
	if err != nil {
		return Level{}, err
	}
	return levelIn(st.Tiers.Tiers, total), nil
}

// Events emitted when an award moves a member across a threshold.
const (
	EventLevelChanged = "member.level.changed"
	EventTierChanged  = "member.tier.changed"
)

// levelChange is the payload of member.level.changed and
// member.tier.changed.
type levelChange struct {
	UserID string `json:"userId"`
	XP     int64  `json:"xp"`
	From   Level  `json:"from"`
	To     Level  `json:"to"`
	// LogID is the gamification log row of the award that caused it.
	LogID string `json:"logId"`
}

// LevelHook is the xp award hook (register it with xp.Service.AddHook):
// when tiers are enabled and an award moves the member's lifetime XP across
// a level threshold it emits member.level.changed, and member.tier.changed
// too when the tier differs, in the award's transaction.
func (s *Service) LevelHook(ctx context.Context, tx *db.Tx, l xp.Log, before, after int64) error {
	if before == after {
		return nil
	}
	st, _, err := s.current(ctx, tx, l.CommunityID, "")
	if err != nil {
		return err
	}
	if !st.Tiers.Enabled || len(st.Tiers.Tiers) == 0 {
		return nil
	}
	from, to := levelIn(st.Tiers.Tiers, before), levelIn(st.Tiers.Tiers, after)
	if from.Index == to.Index {
		return nil
	}
	change := levelChange{UserID: l.UserID, XP: after, From: from, To: to, LogID: l.ID}
	if err := s.d.Events.Append(ctx, tx, l.CommunityID, EventLevelChanged, change); err != nil {
		return err
	}
	if from.Tier != to.Tier {
		return s.d.Events.Append(ctx, tx, l.CommunityID, EventTierChanged, change)
	}
	return nil
}
