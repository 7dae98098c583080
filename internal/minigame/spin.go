package minigame

import (
	"context"
	"fmt"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// ActionSpin names spin prizes in the gamification log.
const ActionSpin = "spin"

// Spins is a member's wheel information.
type Spins struct {
	UserID string `json:"userId"`
	// SpinsAvailable is the extra spins plus one when the free spin is due.
	SpinsAvailable int64 `json:"spinsAvailable"`
	// ExtraSpins are spins granted and not yet used; they never expire.
	ExtraSpins int64 `json:"extraSpins"`
	// ExtraSpinsGranted counts every extra spin ever granted.
	ExtraSpinsGranted int64 `json:"extraSpinsGranted"`
	FreeSpinAvailable bool  `json:"freeSpinAvailable"`
	// NextFreeSpinAt is when the free spin is (or was) due; null when the
	// wheel gives no free spins.
	NextFreeSpinAt *jsonx.Time `json:"nextFreeSpinAt"`
	// CooldownRemainingSeconds counts down to NextFreeSpinAt (0 when due).
	CooldownRemainingSeconds int64 `json:"cooldownRemainingSeconds"`
	TotalSpins               int64 `json:"totalSpins"`
}

// spinRow is a member's stored spins.
type spinRow struct {
	extra, granted, nextFree, used int64
}

// view is the member's wheel information at now under w (nil: no wheel).
func (r spinRow) view(userID string, w *Wheel, now time.Time) Spins {
	sp := Spins{UserID: userID, ExtraSpins: r.extra, ExtraSpinsGranted: r.granted, TotalSpins: r.used, SpinsAvailable: r.extra}
	if w != nil && w.FreeSpinEnabled {
		due := time.UnixMilli(r.nextFree).UTC()
		if r.nextFree == 0 {
			due = now
		}
		t := jsonx.At(due)
		sp.NextFreeSpinAt = &t
		sp.CooldownRemainingSeconds = secondsUntil(now, due)
		sp.FreeSpinAvailable = sp.CooldownRemainingSeconds == 0 && w.Enabled
		if sp.FreeSpinAvailable {
			sp.SpinsAvailable++
		}
	}
	return sp
}

// lockSpins reads (creating) the member's spins, locked for tx.
func lockSpins(ctx context.Context, tx *db.Tx, communityID, userID string, now time.Time) (spinRow, error) {
	if err := tx.Lock(ctx, "spins:"+communityID+":"+userID); err != nil {
		return spinRow{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO spin_members (community_id, user_id, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (community_id, user_id) DO NOTHING`, communityID, userID, now.UnixMilli()); err != nil {
		return spinRow{}, fmt.Errorf("create member spins: %w", err)
	}
	var r spinRow
	if err := tx.QueryRow(ctx, "SELECT extra_spins, extra_granted, next_free_spin_at, spins_used FROM spin_members WHERE community_id = ? AND user_id = ?"+
		tx.DB().ForUpdate(), communityID, userID).Scan(&r.extra, &r.granted, &r.nextFree, &r.used); err != nil {
		return spinRow{}, fmt.Errorf("read member spins: %w", err)
	}
	return r, nil
}

func writeSpins(ctx context.Context, tx *db.Tx, communityID, userID string, r spinRow, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE spin_members SET extra_spins = ?, extra_granted = ?, next_free_spin_at = ?, spins_used = ?, updated_at = ?
		WHERE community_id = ? AND user_id = ?`, r.extra, r.granted, r.nextFree, r.used, now.UnixMilli(), communityID, userID); err != nil {
		return fmt.Errorf("write member spins: %w", err)
	}
	return nil
}

// wheelOrNil reads the community's wheel in tx, nil when none is set up.
func wheelOrNil(ctx context.Context, tx *db.Tx, communityID string) (*Wheel, error) {
	w, err := scanWheel(tx.QueryRow(ctx, "SELECT "+wheelColumns+" FROM spin_wheels WHERE community_id = ?", communityID))
	if errs.KindOf(err) == errs.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &w, nil
}

// Spins returns the member's wheel information.
func (s *Service) Spins(ctx context.Context, communityID, userID string) (Spins, error) {
	var out Spins
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		w, err := wheelOrNil(ctx, tx, communityID)
		if err != nil {
			return err
		}
		now := s.d.Clock.Now()
		var r spinRow
		err = tx.QueryRow(ctx, "SELECT extra_spins, extra_granted, next_free_spin_at, spins_used FROM spin_members WHERE community_id = ? AND user_id = ?",
			communityID, userID).Scan(&r.extra, &r.granted, &r.nextFree, &r.used)
		if err != nil && !isNoRows(err) {
			return fmt.Errorf("read member spins: %w", err)
		}
		out = r.view(userID, w, now)
		return nil
	})
	return out, err
}

// SpinsInput changes a member's wheel information: ExtraSpins sets the
// extra spins held, GrantSpins adds to them (after ExtraSpins), and
// NextFreeSpinAt moves the free spin's due time (null or a past time: due
// now).
type SpinsInput struct {
	ExtraSpins     jsonx.Optional[int64]  `json:"extraSpins"`
	GrantSpins     jsonx.Optional[int64]  `json:"grantSpins"`
	NextFreeSpinAt jsonx.Optional[string] `json:"nextFreeSpinAt"`
}

// UpdateSpins applies in to the member's spins and returns the result.
func (s *Service) UpdateSpins(ctx context.Context, communityID, userID string, in SpinsInput) (Spins, error) {
	var v errs.Validator
	v.Check(in.ExtraSpins.Set || in.GrantSpins.Set || in.NextFreeSpinAt.Set, "extraSpins", "send extraSpins, grantSpins or nextFreeSpinAt")
	if in.ExtraSpins.Set {
		v.Check(!in.ExtraSpins.Null && in.ExtraSpins.Value >= 0 && in.ExtraSpins.Value <= MaxExtraSpins, "extraSpins",
			"must be a whole number from 0 to %d", MaxExtraSpins)
	}
	if in.GrantSpins.Set {
		v.Check(!in.GrantSpins.Null && in.GrantSpins.Value >= 1 && in.GrantSpins.Value <= MaxExtraSpins, "grantSpins",
			"must be a whole number from 1 to %d", MaxExtraSpins)
	}
	var next int64
	if in.NextFreeSpinAt.Set && !in.NextFreeSpinAt.Null {
		t, err := time.Parse(time.RFC3339Nano, in.NextFreeSpinAt.Value)
		v.Check(err == nil, "nextFreeSpinAt", "must be an RFC 3339 timestamp or null")
		next = t.UnixMilli()
	}
	if err := v.Err(); err != nil {
		return Spins{}, err
	}
	var out Spins
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		now := s.d.Clock.Now()
		r, err := lockSpins(ctx, tx, communityID, userID, now)
		if err != nil {
			return err
		}
		if in.ExtraSpins.Set {
			if in.ExtraSpins.Value > r.extra {
				r.granted += in.ExtraSpins.Value - r.extra
			}
			r.extra = in.ExtraSpins.Value
		}
		if in.GrantSpins.Set {
			r.extra += in.GrantSpins.Value
			r.granted += in.GrantSpins.Value
		}
		if r.extra > MaxExtraSpins {
			var v errs.Validator
			v.Add("grantSpins", "would raise extra spins above %d", MaxExtraSpins)
			return v.Err()
		}
		if in.NextFreeSpinAt.Set {
			r.nextFree = max(next, 0)
		}
		if err := writeSpins(ctx, tx, communityID, userID, r, now); err != nil {
			return err
		}
		w, err := wheelOrNil(ctx, tx, communityID)
		if err != nil {
			return err
		}
		out = r.view(userID, w, now)
		return s.d.Events.Append(ctx, tx, communityID, "minigame.spins_updated", out)
	})
	return out, err
}

// Log is one mini-game play.
type Log struct {
	ID        string `json:"_id"`
	Seq       int64  `json:"sequence"`
	UserID    string `json:"userId"`
	Game      string `json:"game"`
	SegmentID string `json:"segmentId"`
	Label     string `json:"label"`
	PrizeType string `json:"prizeType"`
	Amount    int64  `json:"amount"`
	ProductID string `json:"productId,omitempty"`
	FreeSpin  bool   `json:"freeSpin"`
	// RewardReference is the gamification log (coins, XP) or wallet ledger
	// row (premium) that paid the prize.
	RewardReference string       `json:"rewardReference,omitempty"`
	Actor           wallet.Actor `json:"actor"`
	CreatedAt       jsonx.Time   `json:"createdAt"`
}

// SpinResult is a spin's log and the member's spins after it.
type SpinResult struct {
	Log   Log   `json:"log"`
	Spins Spins `json:"spins"`
}

// SpinTx spins the community's wheel for the member in tx: it uses the due
// free spin, else one extra spin (409 when there is none), draws a segment,
// grants its prize and writes the mini-game log and a minigame.spun event
// (plus minigame.product_won for a product, which the store hands out).
func (s *Service) SpinTx(ctx context.Context, tx *db.Tx, communityID, userID string, actor wallet.Actor) (SpinResult, error) {
	w, err := wheelOrNil(ctx, tx, communityID)
	if err != nil {
		return SpinResult{}, err
	}
	if w == nil {
		return SpinResult{}, errs.NotFoundf("Spin wheel not found.")
	}
	if !w.Enabled {
		return SpinResult{}, errs.Conflictf("The spin wheel is disabled.")
	}
	now := s.d.Clock.Now()
	r, err := lockSpins(ctx, tx, communityID, userID, now)
	if err != nil {
		return SpinResult{}, err
	}
	before := r.view(userID, w, now)
	l := Log{ID: id.New(now), UserID: userID, Game: GameSpinWheel, Actor: actor, CreatedAt: jsonx.At(now)}
	switch {
	case before.FreeSpinAvailable:
		l.FreeSpin = true
		r.nextFree = now.Add(time.Duration(w.CooldownSeconds) * time.Second).UnixMilli()
	case r.extra > 0:
		r.extra--
	default:
		return SpinResult{}, errs.Conflictf("No spins available.")
	}
	r.used++
	if err := writeSpins(ctx, tx, communityID, userID, r, now); err != nil {
		return SpinResult{}, err
	}
	seg, err := Draw(w.Segments)
	if err != nil {
		return SpinResult{}, err
	}
	l.SegmentID, l.Label, l.PrizeType, l.Amount, l.ProductID = seg.ID, seg.Label, seg.Type, seg.Amount, seg.ProductID
	if l.RewardReference, err = s.grant(ctx, tx, communityID, userID, l, actor); err != nil {
		return SpinResult{}, err
	}
	if err := tx.QueryRow(ctx, `INSERT INTO minigame_logs (id, community_id, user_id, game, segment_id, label, prize_type, amount, product_id,
		free_spin, reward_ref, actor_kind, actor_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		l.ID, communityID, userID, l.Game, l.SegmentID, l.Label, l.PrizeType, l.Amount, l.ProductID, l.FreeSpin, l.RewardReference,
		actor.Kind, actor.ID, now.UnixMilli()).Scan(&l.Seq); err != nil {
		return SpinResult{}, fmt.Errorf("write mini-game log: %w", err)
	}
	if err := s.d.Events.Append(ctx, tx, communityID, "minigame.spun", l); err != nil {
		return SpinResult{}, err
	}
	if l.PrizeType == PrizeProduct {
		if err := s.d.Events.Append(ctx, tx, communityID, "minigame.product_won", map[string]any{
			"userId": userID, "productId": l.ProductID, "quantity": 1, "miniGameLogId": l.ID}); err != nil {
			return SpinResult{}, err
		}
	}
	return SpinResult{Log: l, Spins: r.view(userID, w, now)}, nil
}

// grant pays a prize and returns the record that paid it.
func (s *Service) grant(ctx context.Context, tx *db.Tx, communityID, userID string, l Log, actor wallet.Actor) (string, error) {
	switch l.PrizeType {
	case PrizeCoins, PrizeXP:
		a := xp.Award{CommunityID: communityID, UserID: userID, Action: ActionSpin, Reference: "minigame:" + l.ID, Actor: actor}
		if l.PrizeType == PrizeCoins {
			a.Coins = l.Amount
		} else {
			a.XP = l.Amount
		}
		g, _, err := s.d.XP.AwardTx(ctx, tx, a)
		if err != nil {
			return "", fmt.Errorf("grant spin prize: %w", err)
		}
		return g.ID, nil
	case PrizePremium:
		row, err := s.d.Wallet.ApplyTx(ctx, tx, wallet.Entry{CommunityID: communityID, UserID: userID, Currency: wallet.Premium,
			Amount: l.Amount, Reason: wallet.ReasonReward, Reference: "minigame:" + l.ID, Actor: actor})
		if err != nil {
			return "", fmt.Errorf("grant spin prize: %w", err)
		}
		return row.ID, nil
	}
	return "", nil
}

// Logs pages the member's mini-game logs, newest first; page counts from
// 1. It returns the total too.
func (s *Service) Logs(ctx context.Context, communityID, userID string, page, limit int) ([]Log, int, error) {
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM minigame_logs WHERE community_id = ? AND user_id = ?", communityID, userID).
		Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count mini-game logs: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, `SELECT seq, id, user_id, game, segment_id, label, prize_type, amount, product_id, free_spin, reward_ref,
		actor_kind, actor_id, created_at FROM minigame_logs WHERE community_id = ? AND user_id = ? ORDER BY seq DESC LIMIT ? OFFSET ?`,
		communityID, userID, limit, (page-1)*limit)
	if err != nil {
		return nil, 0, fmt.Errorf("list mini-game logs: %w", err)
	}
	defer rows.Close()
	out := []Log{}
	for rows.Next() {
		var (
			l  Log
			at int64
		)
		if err := rows.Scan(&l.Seq, &l.ID, &l.UserID, &l.Game, &l.SegmentID, &l.Label, &l.PrizeType, &l.Amount, &l.ProductID, &l.FreeSpin,
			&l.RewardReference, &l.Actor.Kind, &l.Actor.ID, &at); err != nil {
			return nil, 0, fmt.Errorf("list mini-game logs: %w", err)
		}
		l.CreatedAt = jsonx.Millis(at)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list mini-game logs: %w", err)
	}
	return out, total, nil
}

// Summary is a member's mini-game totals.
type Summary struct {
	TotalPlays int64 `json:"totalPlays"`
	// Won sums the prizes by type (products count units; nothing counts
	// plays that won nothing).
	Won map[string]int64 `json:"won"`
}

// Summary totals the member's mini-game logs.
func (s *Service) Summary(ctx context.Context, communityID, userID string) (Summary, error) {
	out := Summary{Won: map[string]int64{}}
	for _, t := range PrizeTypes {
		out.Won[t] = 0
	}
	rows, err := s.d.DB.Query(ctx, `SELECT prize_type, COUNT(*), COALESCE(SUM(amount), 0) FROM minigame_logs
		WHERE community_id = ? AND user_id = ? GROUP BY prize_type`, communityID, userID)
	if err != nil {
		return Summary{}, fmt.Errorf("sum mini-game logs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			typ        string
			n, amounts int64
		)
		if err := rows.Scan(&typ, &n, &amounts); err != nil {
			return Summary{}, fmt.Errorf("sum mini-game logs: %w", err)
		}
		out.TotalPlays += n
		if typ == PrizeNothing {
			amounts = n
		}
		out.Won[typ] = amounts
	}
	if err := rows.Err(); err != nil {
		return Summary{}, fmt.Errorf("sum mini-game logs: %w", err)
	}
	return out, nil
}
