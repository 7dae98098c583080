package wallet_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
)

var system = wallet.Actor{Kind: wallet.ActorSystem, ID: "test"}

func entry(communityID, userID, currency string, amount int64, reason string) wallet.Entry {
	return wallet.Entry{CommunityID: communityID, UserID: userID, Currency: currency, Amount: amount, Reason: reason, Actor: system}
}

// setup starts Rally with one community and one member in it.
func setup(t *testing.T) (*apitest.Env, string, user.User) {
	t.Helper()
	e := apitest.New(t)
	c, _ := e.Community("W", "w")
	return e, c, e.Member(c, "ann", user.MemberOptions{Joined: true})
}

func TestApplyTxJoinsTheCallersTransaction(t *testing.T) {
	e, c, u := setup(t)
	ctx, w := context.Background(), e.App.Wallet
	if _, err := w.Credit(ctx, entry(c, u.ID, wallet.Coins, 50, wallet.ReasonReward)); err != nil {
		t.Fatal(err)
	}
	// A caller's transaction that fails after the debit leaves no trace.
	boom := errors.New("stock gone")
	err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
		if _, err := w.ApplyTx(ctx, tx, entry(c, u.ID, wallet.Coins, -20, wallet.ReasonPurchase)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	b, err := w.Balances(ctx, c, u.ID)
	if err != nil || b[wallet.Coins] != 50 || b[wallet.Premium] != 0 {
		t.Fatalf("balances %v, %v; want coins 50 after the rollback", b, err)
	}
	rows, next, err := w.Ledger(ctx, c, u.ID, wallet.LedgerQuery{})
	if err != nil || len(rows) != 1 || next != 0 {
		t.Fatalf("ledger %v, %d, %v", rows, next, err)
	}
}

func TestApplyTxRules(t *testing.T) {
	e, c, u := setup(t)
	ctx, w := context.Background(), e.App.Wallet
	other, _ := e.Community("V", "v")
	stranger := e.Member(other, "bob", user.MemberOptions{Joined: true})

	cases := []struct {
		name string
		e    wallet.Entry
		kind errs.Kind
	}{
		{"unknown currency", entry(c, u.ID, "gold", 1, wallet.ReasonCredit), errs.Invalid},
		{"zero", entry(c, u.ID, wallet.Coins, 0, wallet.ReasonCredit), errs.Invalid},
		{"too large", entry(c, u.ID, wallet.Coins, wallet.MaxAmount+1, wallet.ReasonCredit), errs.Invalid},
		{"unknown reason", entry(c, u.ID, wallet.Coins, 1, "gift"), errs.Invalid},
		{"another community's member", entry(c, stranger.ID, wallet.Coins, 1, wallet.ReasonCredit), errs.NotFound},
		{"insufficient", entry(c, u.ID, wallet.Coins, -1, wallet.ReasonDebit), errs.Conflict},
	}
	for _, tc := range cases {
		err := e.App.DB.Tx(ctx, func(tx *db.Tx) error { _, err := w.ApplyTx(ctx, tx, tc.e); return err })
		if errs.KindOf(err) != tc.kind {
			t.Errorf("%s: got %v, want kind %d", tc.name, err, tc.kind)
		}
	}
	if _, err := w.Debit(ctx, entry(c, u.ID, wallet.Coins, -5, wallet.ReasonDebit)); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("Debit takes a positive amount: %v", err)
	}
	// The balance is bounded above too (set near the bound directly: a
	// thousand maximal credits would take long).
	if _, err := w.Credit(ctx, entry(c, u.ID, wallet.Premium, 1, wallet.ReasonAdjustment)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.App.DB.Exec(ctx, "UPDATE wallet_balances SET balance = ? WHERE user_id = ? AND currency = ?",
		wallet.MaxBalance-5, u.ID, wallet.Premium); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Credit(ctx, entry(c, u.ID, wallet.Premium, 6, wallet.ReasonAdjustment)); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("credit past the maximum: %v", err)
	}
	if row, err := w.Credit(ctx, entry(c, u.ID, wallet.Premium, 5, wallet.ReasonAdjustment)); err != nil || row.BalanceAfter != wallet.MaxBalance {
		t.Fatalf("credit up to the maximum: %+v, %v", row, err)
	}
}

func TestLedgerAlwaysSumsToTheBalance(t *testing.T) {
	e, c, u := setup(t)
	ctx, w := context.Background(), e.App.Wallet
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]int64{}
	for i := 0; i < 120; i++ {
		currency := wallet.Currencies[rng.IntN(2)]
		amount := int64(rng.IntN(100) + 1)
		if rng.IntN(2) == 0 {
			_, err := w.Debit(ctx, entry(c, u.ID, currency, amount, wallet.ReasonDebit))
			if err == nil {
				want[currency] -= amount
			} else if errs.KindOf(err) != errs.Conflict || amount <= want[currency] {
				t.Fatalf("debit %d of %d: %v", amount, want[currency], err)
			}
			continue
		}
		if _, err := w.Credit(ctx, entry(c, u.ID, currency, amount, wallet.ReasonCredit)); err != nil {
			t.Fatal(err)
		}
		want[currency] += amount
	}
	b, err := w.Balances(ctx, c, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, currency := range wallet.Currencies {
		var sum int64
		before := int64(0)
		for {
			rows, next, err := w.Ledger(ctx, c, u.ID, wallet.LedgerQuery{Currency: currency, Before: before, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				sum += r.Amount
				if r.BalanceAfter < 0 {
					t.Fatalf("negative balance recorded: %+v", r)
				}
			}
			if next == 0 {
				break
			}
			before = next
		}
		if sum != b[currency] || b[currency] != want[currency] {
			t.Fatalf("%s: ledger %d, balance %d, expected %d", currency, sum, b[currency], want[currency])
		}
	}
}

func TestEarnedSince(t *testing.T) {
	e, c, u := setup(t)
	ctx, w := context.Background(), e.App.Wallet
	if _, err := w.Credit(ctx, entry(c, u.ID, wallet.Coins, 100, wallet.ReasonReward)); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(24 * time.Hour)
	since := e.Clock.Now()
	for _, en := range []wallet.Entry{
		entry(c, u.ID, wallet.Coins, 7, wallet.ReasonReward),
		entry(c, u.ID, wallet.Coins, 3, wallet.ReasonCredit),
		entry(c, u.ID, wallet.Coins, 50, wallet.ReasonRefund),
		entry(c, u.ID, wallet.Coins, 9, wallet.ReasonAdjustment),
		entry(c, u.ID, wallet.Premium, 11, wallet.ReasonReward),
	} {
		if _, err := w.Credit(ctx, en); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Debit(ctx, entry(c, u.ID, wallet.Coins, 20, wallet.ReasonPurchase)); err != nil {
		t.Fatal(err)
	}
	got, err := w.EarnedSince(ctx, c, u.ID, wallet.Coins, since)
	if err != nil || got != 10 {
		t.Fatalf("coins earned since %v: %d, %v; want 10 (rewards and credits only)", since, got, err)
	}
	if got, _ := w.EarnedSince(ctx, c, u.ID, wallet.Premium, since); got != 11 {
		t.Fatalf("premium earned: %d", got)
	}
}
