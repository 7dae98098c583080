// Package minigame runs the community's spin wheel: weighted segments
// configured per community, each member's spins (a free spin after every
// cooldown plus extra spins granted), the draw, the prize and the mini-game
// log. A spin decrements the member's spins, grants the prize (XP and coins
// through the XP service, premium currency through the wallet, a product
// recorded and announced for the store to hand out) and writes its log in
// one transaction.
package minigame

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rallyhq/rally/internal/event"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/store"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// Prize types of a segment.
const (
	PrizeCoins   = "coins"
	PrizeXP      = "xp"
	PrizePremium = "premium"
	PrizeProduct = "product"
	PrizeNothing = "nothing"
)

// PrizeTypes lists every prize type.
var PrizeTypes = []string{PrizeCoins, PrizeXP, PrizePremium, PrizeProduct, PrizeNothing}

// GameSpinWheel names the spin wheel in mini-game logs.
const GameSpinWheel = "spin-wheel"

// Limits of a wheel.
const (
	MaxSegments    = 50
	MaxWeight      = 1_000_000
	MaxPrize       = 1_000_000_000
	MaxLabelLength = 100
	MaxCooldown    = 365 * 24 * 3600
	MaxExtraSpins  = 1_000_000
)

// Segment is one slice of the wheel.
type Segment struct {
	ID    string `json:"_id"`
	Label string `json:"label"`
	Type  string `json:"type"`
	// Amount is the coins, XP or premium currency won (1 for a product,
	// 0 for nothing).
	Amount    int64  `json:"amount"`
	ProductID string `json:"productId,omitempty"`
	// Weight is the segment's relative chance: weight / sum of weights.
	Weight int64 `json:"weight"`
}

// Wheel is a community's spin wheel.
type Wheel struct {
	CommunityID string `json:"communityId"`
	Name        string `json:"name"`
	// Enabled wheels can be spun.
	Enabled bool `json:"enabled"`
	// FreeSpinEnabled gives every member one free spin, again each time
	// CooldownSeconds have passed since their last free spin.
	FreeSpinEnabled bool       `json:"freeSpinEnabled"`
	CooldownSeconds int64      `json:"cooldownSeconds"`
	Segments        []Segment  `json:"segments"`
	CreatedAt       jsonx.Time `json:"createdAt"`
	UpdatedAt       jsonx.Time `json:"updatedAt"`
}

// WheelInput creates a wheel or changes the fields it sets.
type WheelInput struct {
	Name            jsonx.Optional[string]    `json:"name"`
	Enabled         jsonx.Optional[bool]      `json:"enabled"`
	FreeSpinEnabled jsonx.Optional[bool]      `json:"freeSpinEnabled"`
	CooldownSeconds jsonx.Optional[int64]     `json:"cooldownSeconds"`
	Segments        jsonx.Optional[[]Segment] `json:"segments"`
}

// Deps are what the mini-game service needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Events event.Appender
	XP     *xp.Service
	Wallet *wallet.Service
	// Store checks that a product prize names one of the community's
	// products.
	Store *store.Service
}

// Service runs the spin wheel.
type Service struct{ d Deps }

// NewService returns the mini-game service.
func NewService(d Deps) *Service { return &Service{d: d} }

// Draw picks a segment with probability weight / total weight, drawing
// from crypto/rand.
func Draw(segments []Segment) (Segment, error) {
	var total int64
	for _, s := range segments {
		total += max(s.Weight, 0)
	}
	if total <= 0 {
		return Segment{}, errors.New("draw: the wheel has no weight")
	}
	n, err := rand.Int(rand.Reader, big.NewInt(total))
	if err != nil {
		return Segment{}, fmt.Errorf("draw: %w", err)
	}
	r := n.Int64()
	for _, s := range segments {
		if w := max(s.Weight, 0); r < w {
			return s, nil
		} else {
			r -= w
		}
	}
	return Segment{}, errors.New("draw: out of range")
}

// checkSegments normalises segs and names every offending field.
func (s *Service) checkSegments(ctx context.Context, communityID string, v *errs.Validator, segs []Segment) []Segment {
	if len(segs) < 1 || len(segs) > MaxSegments {
		v.Add("segments", "must hold 1 to %d segments", MaxSegments)
		return segs
	}
	out := make([]Segment, len(segs))
	seen := map[string]bool{}
	for i, sg := range segs {
		f := fmt.Sprintf("segments.%d.", i)
		sg.Label = strings.TrimSpace(sg.Label)
		v.Check(utf8.RuneCountInString(sg.Label) <= MaxLabelLength, f+"label", "must be at most %d characters", MaxLabelLength)
		v.Check(slices.Contains(PrizeTypes, sg.Type), f+"type", "must be one of %s", strings.Join(PrizeTypes, ", "))
		v.Check(sg.Weight >= 1 && sg.Weight <= MaxWeight, f+"weight", "must be a whole number from 1 to %d", MaxWeight)
		switch sg.Type {
		case PrizeCoins, PrizeXP, PrizePremium:
			v.Check(sg.Amount >= 1 && sg.Amount <= MaxPrize, f+"amount", "must be a whole number from 1 to %d", MaxPrize)
			sg.ProductID = ""
		case PrizeProduct:
			sg.Amount = 1
			if sg.ProductID == "" {
				v.Add(f+"productId", "is required for a product prize")
			} else if _, err := s.d.Store.Product(ctx, communityID, sg.ProductID, store.Query{}); err != nil {
				if errs.KindOf(err) != errs.NotFound && errs.KindOf(err) != errs.Invalid {
					v.Add(f+"productId", "could not be checked")
				} else {
					v.Add(f+"productId", "must name a product of this community")
				}
			}
			sg.ProductID = strings.ToLower(sg.ProductID)
		case PrizeNothing:
			sg.Amount, sg.ProductID = 0, ""
		}
		if sg.ID == "" {
			sg.ID = id.New(s.d.Clock.Now())
		}
		v.Check(len(sg.ID) <= 24 && !seen[sg.ID], f+"_id", "must be unique and at most 24 characters")
		seen[sg.ID] = true
		if sg.Label == "" {
			sg.Label = defaultLabel(sg)
		}
		out[i] = sg
	}
	return out
}

func defaultLabel(sg Segment) string {
	switch sg.Type {
	case PrizeNothing:
		return "Nothing"
	case PrizeProduct:
		return "A product"
	}
	return fmt.Sprintf("%d %s", sg.Amount, sg.Type)
}

const wheelColumns = "community_id, name, enabled, free_spin_enabled, cooldown_seconds, segments, created_at, updated_at"

func scanWheel(r interface{ Scan(...any) error }) (Wheel, error) {
	var (
		w                Wheel
		segs             string
		created, updated int64
	)
	err := r.Scan(&w.CommunityID, &w.Name, &w.Enabled, &w.FreeSpinEnabled, &w.CooldownSeconds, &segs, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Wheel{}, errs.NotFoundf("Spin wheel not found.")
	}
	if err != nil {
		return Wheel{}, fmt.Errorf("read spin wheel: %w", err)
	}
	if err := json.Unmarshal([]byte(segs), &w.Segments); err != nil {
		return Wheel{}, fmt.Errorf("decode spin wheel: %w", err)
	}
	w.CreatedAt, w.UpdatedAt = jsonx.Millis(created), jsonx.Millis(updated)
	return w, nil
}

// Wheel returns the community's wheel (NotFound when none is set up).
func (s *Service) Wheel(ctx context.Context, communityID string) (Wheel, error) {
	return scanWheel(s.d.DB.QueryRow(ctx, "SELECT "+wheelColumns+" FROM spin_wheels WHERE community_id = ?", communityID))
}

// SaveWheel sets up the community's wheel or changes the fields in sets.
// A new wheel needs segments; it is enabled, with a daily free spin, unless
// in says otherwise. It reports whether the wheel was created.
func (s *Service) SaveWheel(ctx context.Context, communityID string, in WheelInput) (Wheel, bool, error) {
	var (
		w       Wheel
		created bool
	)
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		now := s.d.Clock.Now()
		w, err = scanWheel(tx.QueryRow(ctx, "SELECT "+wheelColumns+" FROM spin_wheels WHERE community_id = ?"+tx.DB().ForUpdate(), communityID))
		if errs.KindOf(err) == errs.NotFound {
			created, err = true, nil
			w = Wheel{CommunityID: communityID, Name: "Spin wheel", Enabled: true, FreeSpinEnabled: true, CooldownSeconds: 24 * 3600,
				CreatedAt: jsonx.At(now)}
		}
		if err != nil {
			return err
		}
		var v errs.Validator
		if in.Name.Set {
			w.Name = strings.TrimSpace(in.Name.Value)
			n := utf8.RuneCountInString(w.Name)
			v.Check(!in.Name.Null && n >= 1 && n <= MaxLabelLength, "name", "must be 1 to %d characters", MaxLabelLength)
		}
		if in.Enabled.Set {
			v.Check(!in.Enabled.Null, "enabled", "must be true or false")
			w.Enabled = in.Enabled.Value
		}
		if in.FreeSpinEnabled.Set {
			v.Check(!in.FreeSpinEnabled.Null, "freeSpinEnabled", "must be true or false")
			w.FreeSpinEnabled = in.FreeSpinEnabled.Value
		}
		if in.CooldownSeconds.Set {
			w.CooldownSeconds = in.CooldownSeconds.Value
			v.Check(!in.CooldownSeconds.Null && w.CooldownSeconds >= 0 && w.CooldownSeconds <= MaxCooldown, "cooldownSeconds",
				"must be a whole number from 0 to %d", MaxCooldown)
		}
		switch {
		case in.Segments.Set:
			w.Segments = s.checkSegments(ctx, communityID, &v, in.Segments.Value)
		case created:
			v.Add("segments", "is required")
		}
		if err := v.Err(); err != nil {
			return err
		}
		w.UpdatedAt = jsonx.At(now)
		segs, err := json.Marshal(w.Segments)
		if err != nil {
			return fmt.Errorf("encode spin wheel: %w", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO spin_wheels ("+wheelColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (community_id) DO UPDATE SET name = excluded.name, enabled = excluded.enabled,
			free_spin_enabled = excluded.free_spin_enabled, cooldown_seconds = excluded.cooldown_seconds, segments = excluded.segments,
			updated_at = excluded.updated_at`, communityID, w.Name, w.Enabled, w.FreeSpinEnabled, w.CooldownSeconds, string(segs),
			w.CreatedAt.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("save spin wheel: %w", err)
		}
		typ := "minigame.wheel_updated"
		if created {
			typ = "minigame.wheel_created"
		}
		return s.d.Events.Append(ctx, tx, communityID, typ, w)
	})
	return w, created, err
}

// DeleteWheel removes the community's wheel; members keep their spins.
func (s *Service) DeleteWheel(ctx context.Context, communityID string) error {
	return s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		res, err := tx.Exec(ctx, "DELETE FROM spin_wheels WHERE community_id = ?", communityID)
		if err != nil {
			return fmt.Errorf("delete spin wheel: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return fmt.Errorf("delete spin wheel: %w", err)
			}
			return errs.NotFoundf("Spin wheel not found.")
		}
		return s.d.Events.Append(ctx, tx, communityID, "minigame.wheel_deleted", map[string]any{"communityId": communityID})
	})
}

// secondsUntil is the whole seconds from now to t (0 when t is past).
func secondsUntil(now, t time.Time) int64 {
	if !t.After(now) {
		return 0
	}
	return int64((t.Sub(now) + time.Second - 1) / time.Second)
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
