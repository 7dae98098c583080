package badge

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// Grant asks for a badge to be awarded to a member.
type Grant struct {
	CommunityID string
	BadgeID     string
	// UserID is the member's _id; the caller resolved it to a live member.
	UserID string
	// Quantity is how many times the badge is awarded at once (0 means 1);
	// more than 1 only for badges with MultipleAwards.
	Quantity int64
	// ApplicationID names the approved application the award comes from.
	ApplicationID string
	Actor         wallet.Actor
}

// Award is one recorded award of a badge.
type Award struct {
	ID            string       `json:"_id"`
	CommunityID   string       `json:"communityId"`
	BadgeID       string       `json:"badgeId"`
	UserID        string       `json:"userId"`
	Quantity      int64        `json:"quantity"`
	XP            int64        `json:"xp"`
	Coins         int64        `json:"coins"`
	LogID         string       `json:"logId,omitempty"`
	ApplicationID string       `json:"applicationId,omitempty"`
	Actor         wallet.Actor `json:"actor"`
	// Times is how many times the member holds the badge after the award.
	Times     int64      `json:"times"`
	CreatedAt jsonx.Time `json:"createdAt"`
}

// Held is a badge a member holds: the badge object with "awarded":"true",
// how many times it is held ("count", a string like the badge's other
// numbers) and when it was first and last awarded.
type Held struct {
	Badge
	Times          int64
	FirstAwardedAt jsonx.Time
	LastAwardedAt  jsonx.Time
}

// MarshalJSON writes the legacy badge object with the holding's fields.
func (h Held) MarshalJSON() ([]byte, error) {
	f := h.Badge.fields()
	f["awarded"] = "true"
	f["count"] = strconv.FormatInt(h.Times, 10)
	f["firstAwardedAt"], f["lastAwardedAt"] = h.FirstAwardedAt, h.LastAwardedAt
	return json.Marshal(f)
}

// AwardTx awards a badge inside tx: the holding, an award row, the badge's
// XP and coins through the XP service (Action "badge", Reference
// "<badgeId>:<awardId>") and a badge.awarded event, all in tx, so the
// rewards are granted exactly once per award. A badge without
// MultipleAwards is held at most once: awarding it again is a Conflict
// (also under concurrent awards). Quantity awards a multi-award badge
// several times at once, granting its rewards times quantity.
func (s *Service) AwardTx(ctx context.Context, tx *db.Tx, g Grant) (Award, Held, error) {
	if g.Quantity == 0 {
		g.Quantity = 1
	}
	b, err := getBadge(ctx, tx, g.CommunityID, g.BadgeID, false)
	if err != nil {
		return Award{}, Held{}, err
	}
	if g.Quantity < 1 || g.Quantity > MaxAwardQuantity || (g.Quantity > 1 && !b.MultipleAwards) {
		var v errs.Validator
		if b.MultipleAwards {
			v.Add("quantity", "must be a whole number from 1 to %d", MaxAwardQuantity)
		} else {
			v.Add("quantity", "must be 1: this badge can be held only once")
		}
		return Award{}, Held{}, v.Err()
	}
	now := s.d.Clock.Now()
	ms := now.UnixMilli()
	var times int64
	if b.MultipleAwards {
		err = tx.QueryRow(ctx, `INSERT INTO badge_holdings (community_id, badge_id, user_id, times, first_awarded_at, last_awarded_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (community_id, badge_id, user_id)
			DO UPDATE SET times = badge_holdings.times + excluded.times, last_awarded_at = excluded.last_awarded_at RETURNING times`,
			g.CommunityID, b.ID, g.UserID, g.Quantity, ms, ms).Scan(&times)
		if err != nil {
			return Award{}, Held{}, fmt.Errorf("hold badge: %w", err)
		}
	} else {
		res, err := tx.Exec(ctx, `INSERT INTO badge_holdings (community_id, badge_id, user_id, times, first_awarded_at, last_awarded_at)
			VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (community_id, badge_id, user_id) DO NOTHING`, g.CommunityID, b.ID, g.UserID, ms, ms)
		if err != nil {
			return Award{}, Held{}, fmt.Errorf("hold badge: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return Award{}, Held{}, fmt.Errorf("hold badge: %w", err)
			}
			return Award{}, Held{}, errs.Conflictf("User already has this badge.")
		}
		times = 1
	}
	a := Award{ID: id.New(now), CommunityID: g.CommunityID, BadgeID: b.ID, UserID: g.UserID, Quantity: g.Quantity,
		ApplicationID: g.ApplicationID, Actor: g.Actor, Times: times, CreatedAt: jsonx.At(now)}
	xpEach, coinsEach := b.Rewards()
	if xpEach != 0 || coinsEach != 0 {
		l, _, err := s.d.XP.AwardTx(ctx, tx, xp.Award{CommunityID: g.CommunityID, UserID: g.UserID, Action: XPAction,
			XP: xpEach * g.Quantity, Coins: coinsEach * g.Quantity, Reference: b.ID + ":" + a.ID, Actor: g.Actor})
		if err != nil {
			return Award{}, Held{}, fmt.Errorf("grant badge rewards: %w", err)
		}
		a.XP, a.Coins, a.LogID = l.XP, l.Coins, l.ID
	}
	if _, err := tx.Exec(ctx, `INSERT INTO badge_awards (id, community_id, badge_id, user_id, quantity, xp, coins, log_id,
		application_id, actor_kind, actor_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.CommunityID, a.BadgeID, a.UserID, a.Quantity, a.XP, a.Coins, a.LogID, a.ApplicationID, a.Actor.Kind, a.Actor.ID, ms); err != nil {
		return Award{}, Held{}, fmt.Errorf("record badge award: %w", err)
	}
	h, err := heldOne(ctx, tx, g.CommunityID, b.ID, g.UserID)
	if err != nil {
		return Award{}, Held{}, err
	}
	if err := s.d.Events.Append(ctx, tx, g.CommunityID, "badge.awarded", a); err != nil {
		return Award{}, Held{}, err
	}
	return a, h, nil
}

// AwardBadge is AwardTx in its own transaction.
func (s *Service) AwardBadge(ctx context.Context, g Grant) (a Award, h Held, err error) {
	err = s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		a, h, err = s.AwardTx(ctx, tx, g)
		return err
	})
	return a, h, err
}

// Removal is the outcome of taking a badge from a member.
type Removal struct {
	CommunityID string       `json:"communityId"`
	BadgeID     string       `json:"badgeId"`
	UserID      string       `json:"userId"`
	Removed     int64        `json:"removed"`
	Times       int64        `json:"times"`
	Actor       wallet.Actor `json:"actor"`
}

// Remove takes a badge from a member: quantity of the times it is held (0:
// all of them; more than held removes all). Nothing granted with the badge
// is taken back. A member who does not hold the badge is NotFound.
func (s *Service) Remove(ctx context.Context, communityID, badgeID, userID string, quantity int64, actor wallet.Actor) (Removal, error) {
	if quantity < 0 || quantity > MaxQuantity {
		var v errs.Validator
		v.Add("quantity", "must be a whole number from 1 to %d", MaxQuantity)
		return Removal{}, v.Err()
	}
	var r Removal
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		b, err := getBadge(ctx, tx, communityID, badgeID, false)
		if err != nil {
			return err
		}
		var held int64
		err = tx.QueryRow(ctx, "SELECT times FROM badge_holdings WHERE community_id = ? AND badge_id = ? AND user_id = ?"+tx.DB().ForUpdate(),
			communityID, b.ID, userID).Scan(&held)
		if err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return errs.NotFoundf("User does not have this badge.")
			}
			return fmt.Errorf("read badge holding: %w", err)
		}
		r = Removal{CommunityID: communityID, BadgeID: b.ID, UserID: userID, Removed: held, Actor: actor}
		if quantity > 0 && quantity < held {
			r.Removed, r.Times = quantity, held-quantity
			_, err = tx.Exec(ctx, "UPDATE badge_holdings SET times = ? WHERE community_id = ? AND badge_id = ? AND user_id = ?",
				r.Times, communityID, b.ID, userID)
		} else {
			_, err = tx.Exec(ctx, "DELETE FROM badge_holdings WHERE community_id = ? AND badge_id = ? AND user_id = ?", communityID, b.ID, userID)
		}
		if err != nil {
			return fmt.Errorf("remove badge: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "badge.removed", r)
	})
	if err != nil {
		return Removal{}, err
	}
	return r, nil
}

// heldSelect reads holdings with their badges (scanHeld).
const heldSelect = "SELECT " + badgeColumns + ", h.user_id, h.times, h.first_awarded_at, h.last_awarded_at " +
	"FROM badge_holdings h JOIN badges ON badges.id = h.badge_id "

// scanHeld reads a holding row and returns it with its member's id.
func scanHeld(r interface{ Scan(...any) error }) (string, Held, error) {
	var (
		h           Held
		userID      string
		first, last int64
	)
	b, err := scanBadge(r, &userID, &h.Times, &first, &last)
	if err != nil {
		return "", Held{}, err
	}
	h.Badge, h.FirstAwardedAt, h.LastAwardedAt = b, jsonx.Millis(first), jsonx.Millis(last)
	return userID, h, nil
}

// heldOne reads one member's holding of a badge.
func heldOne(ctx context.Context, q querier, communityID, badgeID, userID string) (Held, error) {
	_, h, err := scanHeld(q.QueryRow(ctx, heldSelect+"WHERE h.community_id = ? AND h.badge_id = ? AND h.user_id = ?",
		communityID, badgeID, userID))
	return h, err
}

// Held returns the badges a member holds, most recently awarded first,
// skipping skip and at most limit, with the total.
func (s *Service) Held(ctx context.Context, communityID, userID string, skip, limit int) ([]Held, int, error) {
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM badge_holdings WHERE community_id = ? AND user_id = ?",
		communityID, userID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count held badges: %w", err)
	}
	got, err := s.heldWhere(ctx, "WHERE h.community_id = ? AND h.user_id = ? ORDER BY h.last_awarded_at DESC, badges.id LIMIT ? OFFSET ?",
		communityID, userID, limit, skip)
	if err != nil {
		return nil, 0, err
	}
	if got[userID] == nil {
		return []Held{}, total, nil
	}
	return got[userID], total, nil
}

// HeldBy returns the badges each of userIDs holds in the community, most
// recently awarded first (leaderboards show them next to members). Members
// holding none are absent from the map.
func (s *Service) HeldBy(ctx context.Context, communityID string, userIDs []string) (map[string][]Held, error) {
	if len(userIDs) == 0 {
		return map[string][]Held{}, nil
	}
	args := []any{communityID}
	marks := make([]byte, 0, 2*len(userIDs))
	for i, u := range userIDs {
		if i > 0 {
			marks = append(marks, ',')
		}
		marks = append(marks, '?')
		args = append(args, u)
	}
	return s.heldWhere(ctx, "WHERE h.community_id = ? AND h.user_id IN ("+string(marks)+") ORDER BY h.last_awarded_at DESC, badges.id", args...)
}

// heldWhere reads holdings matched by where (after the join), by member.
func (s *Service) heldWhere(ctx context.Context, where string, args ...any) (map[string][]Held, error) {
	rows, err := s.d.DB.Query(ctx, heldSelect+where, args...)
	type row struct {
		userID string
		held   Held
	}
	list, err := db.Collect(rows, err, "list held badges", func(r db.Scanner) (row, error) {
		userID, h, err := scanHeld(r)
		return row{userID, h}, err
	})
	if err != nil {
		return nil, err
	}
	out := map[string][]Held{}
	for _, r := range list {
		out[r.userID] = append(out[r.userID], r.held)
	}
	return out, nil
}
