package app

import (
	"context"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/message"
	"github.com/rallyhq/rally/internal/streak"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/userfield"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// userFields lets the user service write and read custom field values
// through the user-field service (which imports package user, so user
// names its own mirror types).
type userFields struct{ s *userfield.Service }

func (f userFields) SetValuesTx(ctx context.Context, tx *db.Tx, communityID, userID string, vals []user.FieldValue,
	actor user.FieldActor, source string) error {
	conv := make([]userfield.Value, len(vals))
	for i, v := range vals {
		conv[i] = userfield.Value(v)
	}
	return f.s.SetValuesTx(ctx, tx, communityID, userID, conv, userfield.Actor(actor), source)
}

func (f userFields) ValuesOfMany(ctx context.Context, communityID string, userIDs []string) (map[string]map[string]any, error) {
	return f.s.ValuesOfMany(ctx, communityID, userIDs)
}

// counters gathers a member's activity counters from the domains that keep
// them: coins from the wallet, XP from the XP service, level and tier from
// gamification, the login streak from the streak service, messages,
// replies and reactions from messaging.
type counters struct {
	wallet   *wallet.Service
	xp       *xp.Service
	streaks  *streak.Service
	levels   *gamification.Service
	messages *message.Service
	clock    clock.Clock
}

func (c counters) Stats(ctx context.Context, communityID, userID string) (user.Stats, error) {
	balances, err := c.wallet.Balances(ctx, communityID, userID)
	if err != nil {
		return user.Stats{}, err
	}
	now := c.clock.Now()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	earned, err := c.wallet.EarnedSince(ctx, communityID, userID, wallet.Coins, today)
	if err != nil {
		return user.Stats{}, err
	}
	total, err := c.xp.Total(ctx, communityID, userID)
	if err != nil {
		return user.Stats{}, err
	}
	xpToday, err := c.xp.EarnedSince(ctx, communityID, userID, today)
	if err != nil {
		return user.Stats{}, err
	}
	loginStreak, err := c.streaks.LoginStreak(ctx, communityID, userID)
	if err != nil {
		return user.Stats{}, err
	}
	lv, err := c.levels.LevelOf(ctx, communityID, total)
	if err != nil {
		return user.Stats{}, err
	}
	msgs, err := c.messages.Counters(ctx, communityID, userID)
	if err != nil {
		return user.Stats{}, err
	}
	st := user.Stats{Coins: balances[wallet.Coins], CoinsEarnedToday: earned, XP: total, XPEarnedToday: xpToday,
		LoginStreak: loginStreak, Level: lv.Index, TotalMessages: msgs.TotalMessages, ReplySent: msgs.ReplySent,
		TotalReactions: msgs.TotalReactions}
	if lv.Index > 0 {
		st.Tier = &user.Tier{Name: lv.TierName, Icon: lv.TierIcon, Level: lv.Level}
	}
	return st, nil
}

func (c counters) Column(field string) string {
	switch field {
	case "coins":
		return wallet.BalanceSQL(wallet.Coins)
	case "xp":
		return xp.TotalSQL
	}
	return user.NoCounters{}.Column(field)
}
