package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/rallyhq/rally/internal/app"
	"github.com/rallyhq/rally/internal/config"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/db/dbtest"
)

// gooseTable is goose's default version table (goose.DefaultTablename).
const gooseTable = "goose_db_version"

var hex64 = regexp.MustCompile(`[0-9a-f]{64}`)

func openDB(t *testing.T, dsn string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestEnsureSchemaEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	d := openDB(t, dbtest.DSN(t))
	applied, err := app.EnsureSchema(ctx, d, false)
	if err != nil {
		t.Fatalf("EnsureSchema on an empty database: %v", err)
	}
	if !slices.ContainsFunc(applied, func(s string) bool { return strings.HasSuffix(s, "_foundation.sql") }) {
		t.Fatalf("applied %v: want the foundation migration", applied)
	}
	if !slices.ContainsFunc(applied, func(s string) bool { return strings.HasPrefix(s, "river/") }) {
		t.Fatalf("applied %v: want the job queue's migrations", applied)
	}
	st, err := d.Schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != st.Target || st.Target < 1 {
		t.Fatalf("schema after EnsureSchema = %+v, want current == target >= 1", st)
	}
	// Up to date: nothing more to apply, with or without upgrade allowed.
	for _, allow := range []bool{false, true} {
		again, err := app.EnsureSchema(ctx, d, allow)
		if err != nil || len(again) != 0 {
			t.Fatalf("EnsureSchema(allowUpgrade=%v) on an up-to-date database = %v, %v; want nothing applied", allow, again, err)
		}
	}
}

func TestEnsureSchemaOlderSchema(t *testing.T) {
	ctx := context.Background()
	dsn := dbtest.DSN(t)
	d := openDB(t, dsn)
	if _, err := app.EnsureSchema(ctx, d, false); err != nil {
		t.Fatal(err)
	}
	st, err := d.Schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Target < 2 {
		// With one migration, "older but not empty" cannot exist.
		t.Skipf("binary carries %d migration(s); an older non-empty schema needs at least 2", st.Target)
	}
	// Make the schema really older: roll the newest migration back with
	// goose, from the same migration files the binary embeds.
	dialect := goose.DialectSQLite3
	if d.Dialect == db.Postgres {
		dialect = goose.DialectPostgres
	}
	p, err := goose.NewProvider(dialect, d.Writer, os.DirFS(filepath.Join("..", "db", "migrations", string(d.Dialect))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Down(ctx); err != nil {
		t.Fatalf("roll back the newest migration: %v", err)
	}
	older, err := d.Schema(ctx)
	if err != nil || older.Current >= st.Target || older.Current < 1 {
		t.Fatalf("schema after rolling back = %+v, %v; want a version below %d", older, err, st.Target)
	}

	_, err = app.EnsureSchema(ctx, d, false)
	if !errors.Is(err, app.ErrSchemaOutdated) {
		t.Fatalf("EnsureSchema on an older schema = %v, want ErrSchemaOutdated", err)
	}
	if !strings.Contains(err.Error(), "rally migrate") || !strings.Contains(err.Error(), "--migrate") {
		t.Fatalf("error %q does not tell the operator how to upgrade", err)
	}
	if after, _ := d.Schema(ctx); after.Current != older.Current {
		t.Fatalf("refused EnsureSchema still changed the schema: %+v -> %+v", older, after)
	}
	cfg := config.Default()
	cfg.DSN = dsn
	if a, err := app.Open(ctx, cfg, nil, app.Options{}); !errors.Is(err, app.ErrSchemaOutdated) {
		if err == nil {
			a.Close()
		}
		t.Fatalf("app.Open without AllowUpgrade on an older schema = %v, want ErrSchemaOutdated", err)
	}

	// Allowed to upgrade: exactly the missing migration is applied.
	a, err := app.Open(ctx, cfg, nil, app.Options{AllowUpgrade: true})
	if err != nil {
		t.Fatalf("app.Open with AllowUpgrade: %v", err)
	}
	defer a.Close()
	if len(a.Applied) != 1 || !strings.HasPrefix(a.Applied[0], fmt.Sprintf("%05d_", st.Target)) {
		t.Fatalf("upgrade applied %v, want only migration %05d", a.Applied, st.Target)
	}
	if now, _ := d.Schema(ctx); now.Current != st.Target {
		t.Fatalf("schema after upgrade = %+v, want version %d", now, st.Target)
	}
}

func TestEnsureSchemaNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	dsn := dbtest.DSN(t)
	d := openDB(t, dsn)
	if _, err := app.EnsureSchema(ctx, d, false); err != nil {
		t.Fatal(err)
	}
	st, err := d.Schema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, "INSERT INTO "+gooseTable+" (version_id, is_applied) VALUES (?, ?)", st.Target+1, true); err != nil {
		t.Fatalf("insert a future version row: %v", err)
	}
	for _, allow := range []bool{false, true} {
		_, err := app.EnsureSchema(ctx, d, allow)
		if err == nil {
			t.Fatalf("EnsureSchema(allowUpgrade=%v) accepted a schema newer than the binary", allow)
		}
		if errors.Is(err, app.ErrSchemaOutdated) || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("EnsureSchema(allowUpgrade=%v) = %v, want a 'newer than this binary' refusal", allow, err)
		}
	}
	cfg := config.Default()
	cfg.DSN = dsn
	if a, err := app.Open(ctx, cfg, nil, app.Options{AllowUpgrade: true}); err == nil {
		a.Close()
		t.Fatal("app.Open accepted a schema newer than the binary")
	}
}

// syncBuffer is a bytes.Buffer safe to write from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitHealthy polls GET /healthz until it answers 200, Serve fails, or the
// (generous) bound runs out.
func waitHealthy(t *testing.T, base string, done <-chan error) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	for range 600 {
		select {
		case err := <-done:
			t.Fatalf("Serve returned before becoming healthy: %v", err)
		default:
		}
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s/healthz never answered 200", base)
}

func TestServeCreatesAdminKeyAndShutsDownGracefully(t *testing.T) {
	cfg := config.Default()
	cfg.DSN = dbtest.DSN(t)
	cfg.AccessLog = false
	var out syncBuffer
	a, err := app.Open(context.Background(), cfg, nil, app.Options{Stdout: &out})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	waitHealthy(t, base, done)

	// No admin key file configured: the key goes to Options.Stdout, once.
	key := hex64.FindString(out.String())
	if key == "" || !strings.Contains(out.String(), "Platform-admin key") {
		t.Fatalf("stdout = %q, want the platform-admin key", out.String())
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/management/communities",
		strings.NewReader(`{"name":"Serve Club","uri":"serve-club"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create community with the printed admin key: status %d, want 201", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	if err := ln.Close(); err == nil {
		t.Fatal("Serve returned but left its listener open")
	}

	// The key exists now: ensuring it again prints nothing more.
	before := out.String()
	if err := a.EnsureAdminKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out.String() != before {
		t.Fatalf("second EnsureAdminKey printed %q", strings.TrimPrefix(out.String(), before))
	}
}

func TestEnsureAdminKeyWritesFile(t *testing.T) {
	cfg := config.Default()
	cfg.DSN = dbtest.DSN(t)
	cfg.AdminKeyFile = filepath.Join(t.TempDir(), "admin.key")
	var out syncBuffer
	a, err := app.Open(context.Background(), cfg, nil, app.Options{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.EnsureAdminKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfg.AdminKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(b) {
		t.Fatalf("admin key file = %q, want 64 hex and a newline", b)
	}
	if fi, err := os.Stat(cfg.AdminKeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if out.String() != "" {
		t.Fatalf("key file configured, yet stdout got %q", out.String())
	}
	// Once created, the file is not rewritten.
	if err := os.WriteFile(cfg.AdminKeyFile, []byte("sentinel"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.EnsureAdminKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(cfg.AdminKeyFile); string(b) != "sentinel" {
		t.Fatalf("second EnsureAdminKey rewrote the key file: %q", b)
	}
}
