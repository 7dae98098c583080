package gamification

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// Outbox events the reward subscriber turns into actions, and the payload
// fields it reads from them. The domains that emit these events (messaging,
// users) must use the same names; this is the one place they are written.
//
//	message.posted  {userId: sender _id, parentId or replyTo: the parent message id for a reply}  -> message, or reply
//	message.reacted {userId: the reacting member's _id}                                           -> react
//	user.visited    {userId}  (the day's first visit)                                               -> visit
//	user.referred   {userId: the new member, referredBy: the referrer's _id}                        -> refer (referrer), referral (new member)
//	user.created    {userId, referredBy (when a referral was given)}                                 -> as user.referred
const (
	EventMessagePosted  = "message.posted"
	EventMessageReacted = "message.reacted"
	EventUserVisited    = "user.visited"
	EventUserReferred   = "user.referred"
	EventUserCreated    = "user.created"

	FieldUserID     = "userId"
	FieldParentID   = "parentId"
	FieldReplyTo    = "replyTo"
	FieldReferredBy = "referredBy"
)

// RewardSubscriberName names the reward subscriber's outbox offsets.
const RewardSubscriberName = "gamification.rewards"

// Subscriber returns the outbox subscriber that rewards members for the
// actions events report (see the event constants), exactly once per event.
func (s *Service) Subscriber() event.Subscriber {
	return event.Subscriber{Name: RewardSubscriberName, HandleBatch: s.handleBatch}
}

// activityFields are the payload fields activities reads (FieldUserID,
// FieldParentID, FieldReplyTo, FieldReferredBy), decoded as any, as a
// generic decode would; the rest of the payload (a whole message) is
// skipped, not decoded.
type activityFields struct {
	UserID     any `json:"userId"`
	ParentID   any `json:"parentId"`
	ReplyTo    any `json:"replyTo"`
	ReferredBy any `json:"referredBy"`
}

// activities maps an event to the actions it reports: nil for events that
// report none or lack the member.
func activities(e event.Event) []Activity {
	switch e.Type {
	case EventMessagePosted, EventMessageReacted, EventUserVisited, EventUserReferred, EventUserCreated:
	default:
		return nil // reports no action: skip decoding the payload
	}
	var p activityFields
	if json.Unmarshal(e.Payload, &p) != nil {
		return nil
	}
	str := func(v any) string { s, _ := v.(string); return strings.TrimSpace(s) }
	one := func(action, userID string) []Activity {
		if userID == "" {
			return nil
		}
		return []Activity{{CommunityID: e.CommunityID, UserID: userID, Action: action, SourceEvent: e.ID, At: e.OccurredAt}}
	}
	switch e.Type {
	case EventMessagePosted:
		if str(p.ParentID) != "" || str(p.ReplyTo) != "" {
			return one(ActionReply, str(p.UserID))
		}
		return one(ActionMessage, str(p.UserID))
	case EventMessageReacted:
		return one(ActionReact, str(p.UserID))
	case EventUserVisited:
		return one(ActionVisit, str(p.UserID))
	case EventUserReferred, EventUserCreated:
		if str(p.ReferredBy) == "" {
			return nil
		}
		return append(one(ActionRefer, str(p.ReferredBy)), one(ActionReferral, str(p.UserID))...)
	}
	return nil
}

// handleBatch records the actions of a batch of events in order, reading
// the community's settings at most once and which of the members acting
// are live members with one query.
func (s *Service) handleBatch(ctx context.Context, tx *db.Tx, events []event.Event) error {
	type act struct {
		a     Activity
		event string
	}
	var (
		acts  []act
		users []any
		seen  = map[string]bool{}
	)
	for _, e := range events {
		for _, a := range activities(e) {
			acts = append(acts, act{a, e.ID})
			if !seen[a.UserID] {
				seen[a.UserID] = true
				users = append(users, a.UserID)
			}
		}
	}
	if len(acts) == 0 {
		return nil
	}
	set := batchState{live: map[string]bool{}}
	rows, err := tx.Query(ctx, "SELECT user_id FROM members WHERE community_id = ? AND deleted_at IS NULL AND user_id IN "+
		db.In(len(users)), append([]any{events[0].CommunityID}, users...)...)
	live, err := db.Collect(rows, err, "read members", func(r db.Scanner) (string, error) {
		var u string
		return u, r.Scan(&u)
	})
	if err != nil {
		return err
	}
	for _, u := range live {
		set.live[u] = true
	}
	for _, x := range acts {
		if _, err := s.recordActionTx(ctx, tx, x.a, &set); err != nil {
			return fmt.Errorf("reward %s for event %s: %w", x.a.Action, x.event, err)
		}
	}
	return nil
}

// batchState is what recordActionTx reads once for a run of activities of
// one community: its settings (once read is set) and, when live is not
// nil, which members are live members.
type batchState struct {
	st   Settings
	read bool
	live map[string]bool
}

// Activity is one action a member did.
type Activity struct {
	CommunityID string
	UserID      string
	// Action is one of Actions, or ActionSocial.
	Action string
	// SourceEvent identifies the occurrence (the outbox event id): the same
	// (SourceEvent, Action, UserID) is counted and rewarded once.
	SourceEvent string
	// At is when the action happened: its UTC day is the day it counts on,
	// and cooldowns are measured between these times.
	At time.Time
}

// Outcome is what RecordActionTx did.
type Outcome struct {
	// Counted is false when the activity was already recorded or the
	// member is not a live member of the community (nothing changed).
	Counted bool
	// Rewarded says whether XP or coins were awarded, and Log is the award.
	Rewarded bool
	Log      xp.Log
}

// RecordActionTx counts a on its UTC day and, when the community's XP
// setting has XP on, the action on, an amount set and the member's
// cooldown for the action passed, awards the action's XP and coins through
// xp.AwardTx (SourceEvent = a.SourceEvent). A per-member-action lock makes
// the cooldown check and the award one step under concurrency.
func (s *Service) RecordActionTx(ctx context.Context, tx *db.Tx, a Activity) (Outcome, error) {
	return s.recordActionTx(ctx, tx, a, &batchState{})
}

// recordActionTx is RecordActionTx reading a.CommunityID's settings into
// set unless set holds them already, and taking set's live members, when
// known, instead of reading the member.
func (s *Service) recordActionTx(ctx context.Context, tx *db.Tx, a Activity, set *batchState) (Outcome, error) {
	var v errs.Validator
	v.Check(a.CommunityID != "" && a.UserID != "", "userId", "is required")
	v.Check(a.SourceEvent != "", "sourceEvent", "is required")
	v.Check(a.Action == ActionSocial || slices.Contains(Actions, a.Action), "action", "is not a rewardable action")
	if err := v.Err(); err != nil {
		return Outcome{}, err
	}
	if set.live != nil {
		if !set.live[a.UserID] {
			return Outcome{}, nil
		}
	} else {
		var deleted sql.NullInt64
		err := tx.QueryRow(ctx, "SELECT deleted_at FROM members WHERE community_id = ? AND user_id = ?", a.CommunityID, a.UserID).Scan(&deleted)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && deleted.Valid) {
			return Outcome{}, nil
		}
		if err != nil {
			return Outcome{}, fmt.Errorf("read member: %w", err)
		}
	}
	if err := tx.Lock(ctx, "gamification:"+a.CommunityID+":"+a.UserID+":"+a.Action); err != nil {
		return Outcome{}, err
	}
	at := a.At.UTC()
	res, err := tx.Exec(ctx, `INSERT INTO gamification_actions (community_id, source_event, action, user_id, rewarded, occurred_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, a.CommunityID, a.SourceEvent, a.Action, a.UserID, false, at.UnixMilli())
	if err != nil {
		return Outcome{}, fmt.Errorf("record action: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return Outcome{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO gamification_action_days (community_id, user_id, day, action, count) VALUES (?, ?, ?, ?, 1)
		ON CONFLICT (community_id, user_id, day, action) DO UPDATE SET count = gamification_action_days.count + 1`,
		a.CommunityID, a.UserID, at.Format(time.DateOnly), a.Action); err != nil {
		return Outcome{}, fmt.Errorf("count action: %w", err)
	}
	out := Outcome{Counted: true}
	if !set.read {
		if set.st, _, err = s.current(ctx, tx, a.CommunityID, ""); err != nil {
			return out, err
		}
		set.read = true
	}
	st := set.st
	rule, ok := st.XPSetting.Actions[a.Action]
	if !ok || !st.XPSetting.Enabled || !rule.Enabled || (rule.XP == 0 && rule.Coins == 0) {
		return out, nil
	}
	if rule.Time > 0 {
		var last int64
		err := tx.QueryRow(ctx, "SELECT last_rewarded_at FROM gamification_cooldowns WHERE community_id = ? AND user_id = ? AND action = ?",
			a.CommunityID, a.UserID, a.Action).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return out, fmt.Errorf("read cooldown: %w", err)
		}
		if err == nil && at.UnixMilli()-last < rule.Time*1000 {
			return out, nil
		}
	}
	l, applied, err := s.d.XP.AwardTx(ctx, tx, xp.Award{CommunityID: a.CommunityID, UserID: a.UserID, Action: a.Action,
		XP: rule.XP, Coins: rule.Coins, SourceEvent: a.SourceEvent, Actor: wallet.Actor{Kind: wallet.ActorSystem}})
	if err != nil || !applied {
		return out, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO gamification_cooldowns (community_id, user_id, action, last_rewarded_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (community_id, user_id, action) DO UPDATE SET last_rewarded_at = excluded.last_rewarded_at`,
		a.CommunityID, a.UserID, a.Action, at.UnixMilli()); err != nil {
		return out, fmt.Errorf("write cooldown: %w", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE gamification_actions SET rewarded = ? WHERE community_id = ? AND source_event = ? AND action = ? AND user_id = ?",
		true, a.CommunityID, a.SourceEvent, a.Action, a.UserID); err != nil {
		return out, fmt.Errorf("mark action rewarded: %w", err)
	}
	out.Rewarded, out.Log = true, l
	return out, nil
}

// RecordAction is RecordActionTx in its own transaction.
func (s *Service) RecordAction(ctx context.Context, a Activity) (Outcome, error) {
	var out Outcome
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		out, err = s.RecordActionTx(ctx, tx, a)
		return err
	})
	return out, err
}
