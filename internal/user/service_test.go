package user

import (
	"context"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/event"
)

// fakeFields records what the service hands the user-field service.
type fakeFields struct {
	vals   []FieldValue
	actor  FieldActor
	source string
	inTx   bool
	refuse bool
}

func (f *fakeFields) SetValuesTx(ctx context.Context, tx *db.Tx, communityID, userID string, vals []FieldValue, actor FieldActor, source string) error {
	if f.refuse {
		var v errs.Validator
		v.Add("customFields", "unknown field")
		return v.Err()
	}
	var n int
	// The account exists inside the caller's transaction.
	f.inTx = tx.QueryRow(ctx, "SELECT COUNT(*) FROM users WHERE id = ?", userID).Scan(&n) == nil && n == 1
	f.vals, f.actor, f.source = vals, actor, source
	return nil
}

func (f *fakeFields) ValuesOfMany(_ context.Context, _ string, ids []string) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	for _, id := range ids {
		out[id] = map[string]any{"customerid": "C-1"}
	}
	return out, nil
}

type fakeRoles struct{}

func (fakeRoles) MemberRoleTitles(context.Context, string, string) ([]string, string, error) {
	return []string{"@all", "VIP"}, "VIP", nil
}

type fakeCounters struct{ NoCounters }

func (fakeCounters) Stats(context.Context, string, string) (Stats, error) {
	return Stats{XP: 120, Coins: 7, LoginStreak: 3}, nil
}

type noEvents struct{}

func (noEvents) Append(context.Context, *db.Tx, string, string, any) error        { return nil }
func (noEvents) AppendAll(context.Context, *db.Tx, string, []event.Pending) error { return nil }

func TestServiceUsesPluggedDomains(t *testing.T) {
	ctx := context.Background()
	d := migratedDB(t)
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if _, err := d.Exec(ctx, `INSERT INTO communities (id, name, name_key, uri, uri_key, created_at, updated_at)
		VALUES ('c1', 'C', 'c', 'c', 'c', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	fields := &fakeFields{}
	store := NewStore(Deps{DB: d, Clock: clk, Events: noEvents{}})
	s := NewService(ServiceDeps{DB: d, Clock: clk, Events: noEvents{}, Store: store, Fields: fields, Roles: fakeRoles{}, Counters: fakeCounters{},
		CheckPassword: func(string) string { return "" }, HashPassword: func(p string) (string, error) { return "hashed:" + p, nil }})
	in := CreateInput{Username: "ada", Email: "ada@example.com",
		CustomFields: []FieldValue{{FieldIDOrName: "customerid", Value: "C-1"}}}
	actor := FieldActor{Kind: "apikey", ID: "k1"}
	if _, err := s.Create(ctx, "c1", in, actor); err != nil {
		t.Fatal(err)
	}
	if !fields.inTx || len(fields.vals) != 1 || fields.vals[0].FieldIDOrName != "customerid" || fields.actor != actor || fields.source != "createUser" {
		t.Fatalf("field values not handed over in the transaction: %+v", fields)
	}
	info, err := s.Info(ctx, "c1", "ada")
	if err != nil {
		t.Fatal(err)
	}
	if info.HighestRole != "VIP" || len(info.Roles) != 2 || info.Stats.XP != 120 || info.CustomFields["customerid"] != "C-1" {
		t.Fatalf("info %+v", info)
	}
	// A refusal from the field service rolls the whole creation back.
	fields.refuse = true
	in.Username, in.Email = "bob", "bob@example.com"
	if _, err := s.Create(ctx, "c1", in, actor); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("want Invalid, got %v", err)
	}
	if _, err := store.Find(ctx, "bob", ByUsername); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("bob was half-created: %v", err)
	}
}
