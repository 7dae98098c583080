package xp_test

import (
	"context"
	"sync"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

func TestAwardsAddUpUnderConcurrency(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	c, _ := e.Community("XP", "xp")
	u := e.Member(c, "ada", user.MemberOptions{AccessLevel: 1, Joined: true})
	var hookCalls int
	var mu sync.Mutex
	e.App.XP.AddHook(func(_ context.Context, _ *db.Tx, l xp.Log, before, after int64) error {
		mu.Lock()
		defer mu.Unlock()
		hookCalls++
		if after-before != l.XP || after != l.XPAfter {
			t.Errorf("hook saw %d -> %d for log %+v", before, after, l)
		}
		return nil
	})
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a := xp.Award{CommunityID: c, UserID: u.ID, Action: "message", XP: 10, Coins: 2, Actor: wallet.Actor{Kind: "system"}}
			if i%10 == 0 {
				a.XP = -15 // takes back, never below zero
			}
			if _, _, err := e.App.XP.Award(ctx, a); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	total, err := e.App.XP.Total(ctx, c, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var sum, coins int64
	var rows int
	if err := e.App.DB.QueryRow(ctx, "SELECT COALESCE(SUM(xp), 0), COALESCE(SUM(coins), 0), COUNT(*) FROM gamification_logs WHERE user_id = ?", u.ID).Scan(&sum, &coins, &rows); err != nil {
		t.Fatal(err)
	}
	if total != sum || rows != n || hookCalls != n {
		t.Fatalf("total %d, log sum %d over %d rows, %d hook calls; want equal totals and %d rows", total, sum, rows, hookCalls, n)
	}
	bal, err := e.App.Wallet.Balances(ctx, c, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bal[wallet.Coins] != coins || coins != 2*n {
		t.Fatalf("coins balance %d, logged %d, want %d", bal[wallet.Coins], coins, 2*n)
	}
	var negative int
	if err := e.App.DB.QueryRow(ctx, "SELECT COUNT(*) FROM gamification_logs WHERE xp_after < 0").Scan(&negative); err != nil || negative != 0 {
		t.Fatalf("%d logs below zero (%v)", negative, err)
	}
}

func TestSourceEventAppliesOnce(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	c, _ := e.Community("XP", "xp")
	u := e.Member(c, "bob", user.MemberOptions{AccessLevel: 1, Joined: true})
	var wg sync.WaitGroup
	applied := make(chan bool, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := e.App.XP.Award(ctx, xp.Award{CommunityID: c, UserID: u.ID, Action: "react", XP: 3, SourceEvent: "evt-1",
				Actor: wallet.Actor{Kind: "system"}})
			if err != nil {
				t.Error(err)
			}
			applied <- ok
		}()
	}
	wg.Wait()
	close(applied)
	n := 0
	for ok := range applied {
		if ok {
			n++
		}
	}
	total, _ := e.App.XP.Total(ctx, c, u.ID)
	if n != 1 || total != 3 {
		t.Fatalf("applied %d times, total %d; want once and 3", n, total)
	}
	// Another action for the same event is a separate award.
	if _, ok, err := e.App.XP.Award(ctx, xp.Award{CommunityID: c, UserID: u.ID, Action: "message", XP: 1, SourceEvent: "evt-1",
		Actor: wallet.Actor{Kind: "system"}}); err != nil || !ok {
		t.Fatalf("second action: applied %v, %v", ok, err)
	}
}

func TestAwardValidationAndMembership(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	c, _ := e.Community("XP", "xp")
	d, _ := e.Community("Other", "other")
	u := e.Member(c, "cat", user.MemberOptions{AccessLevel: 1, Joined: true})
	if _, _, err := e.App.XP.Award(ctx, xp.Award{CommunityID: c, UserID: u.ID, Action: "", XP: 0}); err == nil {
		t.Fatal("empty award accepted")
	}
	// A member of another community earns nothing there (the membership row
	// is required by the totals' foreign key and by the wallet).
	if _, _, err := e.App.XP.Award(ctx, xp.Award{CommunityID: d, UserID: u.ID, Action: "message", XP: 5, Coins: 1,
		Actor: wallet.Actor{Kind: "system"}}); err == nil {
		t.Fatal("awarded a non-member")
	}
	if total, _ := e.App.XP.Total(ctx, d, u.ID); total != 0 {
		t.Fatalf("non-member total %d", total)
	}
}
