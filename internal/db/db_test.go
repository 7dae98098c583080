package db_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/db/dbtest"
)

func TestMigrateIsIdempotentAndReportsSchema(t *testing.T) {
	d := dbtest.Open(t)
	ctx := context.Background()
	applied, err := d.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second migrate applied %v, want nothing", applied)
	}
	st, err := d.Schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current == 0 || st.Current != st.Target {
		t.Fatalf("schema state %+v, want current == target > 0", st)
	}
}

func TestTxCommitsRollsBackAndSerialisesConcurrentIncrements(t *testing.T) {
	d := dbtest.Open(t)
	ctx := context.Background()
	if _, err := d.Exec(ctx, "INSERT INTO event_offsets (subscriber, community_id, last_seq) VALUES (?, ?, ?)", "s", "c", 0); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := d.Tx(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE event_offsets SET last_seq = 99 WHERE subscriber = ?", "s"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := d.Tx(ctx, func(tx *db.Tx) error {
				var v int64
				if err := tx.QueryRow(ctx, "SELECT last_seq FROM event_offsets WHERE subscriber = ?"+d.ForUpdate(), "s").Scan(&v); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "UPDATE event_offsets SET last_seq = ? WHERE subscriber = ?", v+1, "s")
				return err
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var got int64
	if err := d.QueryRow(ctx, "SELECT last_seq FROM event_offsets WHERE subscriber = ?", "s").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("last_seq = %d after %d increments (rolled-back write must not count)", got, n)
	}
}

func TestUniqueViolationIsRecognised(t *testing.T) {
	d := dbtest.Open(t)
	ctx := context.Background()
	q := "INSERT INTO communities (id, name, name_key, uri, uri_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, 0)"
	if _, err := d.Exec(ctx, q, "a", "A", "a", "a", "a"); err != nil {
		t.Fatal(err)
	}
	_, err := d.Exec(ctx, q, "b", "A", "a", "b", "b")
	if !db.IsUniqueViolation(err) || !db.UniqueViolationOn(err, "name_key") {
		t.Fatalf("want unique violation on name_key, got %v", err)
	}
}

func TestRebindSkipsQuotedQuestionMarks(t *testing.T) {
	d := &db.DB{Dialect: db.Postgres}
	got := d.Rebind("SELECT '?' , a FROM t WHERE b = ? AND c = ?")
	want := "SELECT '?' , a FROM t WHERE b = $1 AND c = $2"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestAfterCommitRunsOnlyOnCommit(t *testing.T) {
	d := dbtest.Open(t)
	ctx := context.Background()
	var ran []string
	if err := d.Tx(ctx, func(tx *db.Tx) error {
		tx.AfterCommit(func() { ran = append(ran, "first") })
		tx.AfterCommit(func() { ran = append(ran, "second") })
		if len(ran) != 0 {
			t.Fatal("hook ran before commit")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := d.Tx(ctx, func(tx *db.Tx) error {
		tx.AfterCommit(func() { ran = append(ran, "rolled back") })
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if len(ran) != 2 || ran[0] != "first" || ran[1] != "second" {
		t.Fatalf("hooks ran %v", ran)
	}
}

func TestPostgresPoolSizeDefaultsUnlessTheDSNSetsIt(t *testing.T) {
	dsn := dbtest.DSN(t)
	if !strings.HasPrefix(dsn, "postgres") {
		t.Skip("PostgreSQL only: set " + dbtest.EnvPostgres)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		dsn  string
		want int32
	}{
		{dsn, db.PoolSize()},
		{dsn + "&pool_max_conns=3", 3},
	} {
		d, err := db.Open(ctx, tc.dsn)
		if err != nil {
			t.Fatal(err)
		}
		got := d.Pool.Config().MaxConns
		d.Close()
		if got != tc.want {
			t.Errorf("%s: pool size %d, want %d", tc.dsn, got, tc.want)
		}
	}
	if db.PoolSize() < 16 {
		t.Errorf("default pool size %d, want at least 16", db.PoolSize())
	}
}

func TestValueRows(t *testing.T) {
	cases := []struct {
		n, cols int
		want    string
	}{
		{0, 3, ""},
		{2, 0, ""},
		{1, 1, "(?)"},
		{1, 3, "(?, ?, ?)"},
		{3, 2, "(?, ?), (?, ?), (?, ?)"},
	}
	for _, c := range cases {
		if got := db.ValueRows(c.n, c.cols); got != c.want {
			t.Errorf("ValueRows(%d, %d) = %q, want %q", c.n, c.cols, got, c.want)
		}
	}
}

func TestIn(t *testing.T) {
	for n, want := range map[int]string{1: "(?)", 3: "(?, ?, ?)"} {
		if got := db.In(n); got != want {
			t.Errorf("In(%d) = %q, want %q", n, got, want)
		}
	}
}
