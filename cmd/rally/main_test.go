package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/id"
)

var (
	hex64     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	hex64Find = regexp.MustCompile(`[0-9a-f]{64}`)
)

// clearEnv unsets every RALLY_* setting run reads, so the developer's
// environment cannot change what the tests see.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, n := range []string{"RALLY_ADDR", "RALLY_DATA", "RALLY_DB", "RALLY_MIGRATE", "RALLY_ADMIN_KEY_FILE",
		"RALLY_LOG_LEVEL", "RALLY_ACCESS_LOG", "RALLY_MAX_BODY_BYTES"} {
		t.Setenv(n, "")
		if err := os.Unsetenv(n); err != nil {
			t.Fatal(err)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to write from server goroutines.
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

// rally runs one command and returns its stdout, stderr and error.
func rally(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut syncBuffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustRally runs a command that must succeed and returns its stdout.
func mustRally(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := rally(t, args...)
	if err != nil {
		t.Fatalf("rally %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func TestHelpVersionAndUnknown(t *testing.T) {
	clearEnv(t)
	for _, arg := range []string{"help", "-h", "--help"} {
		out := mustRally(t, arg)
		if !strings.Contains(out, "Usage:") || !strings.Contains(out, "rally serve") || !strings.Contains(out, "rally key create") {
			t.Fatalf("rally %s printed %q, want the usage", arg, out)
		}
	}

	out := mustRally(t, "version")
	if !strings.HasPrefix(out, "rally "+version) {
		t.Fatalf("rally version printed %q", out)
	}

	_, errOut, err := rally(t, "frobnicate")
	if err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: err = %v", err)
	}
	if !strings.Contains(errOut, "Usage:") {
		t.Fatalf("unknown command: stderr %q lacks the usage", errOut)
	}

	_, errOut, err = rally(t)
	if err == nil || !strings.Contains(errOut, "Usage:") {
		t.Fatalf("no command: err = %v, stderr %q", err, errOut)
	}

	for _, args := range [][]string{{"community"}, {"community", "delete"}, {"key"}, {"key", "rotate"}} {
		if _, _, err := rally(t, args...); err == nil || !strings.Contains(err.Error(), "usage") && !strings.Contains(err.Error(), "unknown") {
			t.Fatalf("rally %v: err = %v, want a usage error", args, err)
		}
	}
}

func TestBadEnvironmentIsReported(t *testing.T) {
	clearEnv(t)
	t.Setenv("RALLY_MAX_BODY_BYTES", "huge")
	if _, _, err := rally(t, "version"); err == nil || !strings.Contains(err.Error(), "RALLY_MAX_BODY_BYTES") {
		t.Fatalf("err = %v, want it to name RALLY_MAX_BODY_BYTES", err)
	}
}

func TestSubcommandHelp(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"serve", "--help"}, {"migrate", "-h"}, {"community", "create", "--help"},
		{"key", "create", "--help"}, {"key", "list", "--help"}, {"key", "revoke", "--help"},
	} {
		out, errOut, err := rally(t, args...)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("rally %v: err = %v, want flag.ErrHelp", args, err)
		}
		if !strings.Contains(errOut, "Usage: rally "+args[0]) || !strings.Contains(errOut, "-db") {
			t.Errorf("rally %v: stderr %q lacks the usage and the --db flag", args, errOut)
		}
		if out != "" {
			t.Errorf("rally %v: stdout %q, want nothing", args, out)
		}
	}
	if _, _, err := rally(t, "migrate", "--no-such-flag"); err == nil || errors.Is(err, flag.ErrHelp) {
		t.Fatalf("unknown flag: err = %v, want a parse error", err)
	}
}

func TestMigrate(t *testing.T) {
	clearEnv(t)
	dsn := dbtest.DSN(t)
	out := mustRally(t, "migrate", "--db", dsn)
	if !strings.Contains(out, "applied 00001_foundation.sql") || !strings.Contains(out, "applied river/") {
		t.Fatalf("first migrate printed %q, want the applied migrations", out)
	}
	if strings.Contains(out, "up to date") {
		t.Fatalf("first migrate claimed up to date: %q", out)
	}
	out = mustRally(t, "migrate", "--db", dsn)
	if strings.TrimSpace(out) != "schema is up to date" {
		t.Fatalf("second migrate printed %q, want only 'schema is up to date'", out)
	}
}

func TestMigrateBadDSN(t *testing.T) {
	clearEnv(t)
	if _, _, err := rally(t, "migrate", "--db", "mysql://x"); err == nil || !strings.Contains(err.Error(), "unsupported DSN") {
		t.Fatalf("err = %v, want unsupported DSN", err)
	}
}

func TestMigrateDataDir(t *testing.T) {
	clearEnv(t)
	dir := filepath.Join(t.TempDir(), "data")
	mustRally(t, "migrate", "--data", dir)
	if _, err := os.Stat(filepath.Join(dir, "rally.db")); err != nil {
		t.Fatalf("migrate --data did not create rally.db there: %v", err)
	}
}

type keyJSON struct {
	KeyID       string   `json:"keyId"`
	CommunityID string   `json:"communityId"`
	APIKey      string   `json:"apiKey"`
	Permissions []string `json:"permissions"`
}

type listedKey struct {
	KeyID       string   `json:"keyId"`
	Name        string   `json:"name"`
	Prefix      string   `json:"prefix"`
	Permissions []string `json:"permissions"`
	IsActive    bool     `json:"isActive"`
	ExpireDate  *string  `json:"expireDate"`
	CreatedAt   string   `json:"createdAt"`
}

func listKeys(t *testing.T, dsn, community string) ([]listedKey, string) {
	t.Helper()
	out := mustRally(t, "key", "list", "--db", dsn, "--community", community, "--json")
	var keys []listedKey
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatalf("key list --json printed %q: %v", out, err)
	}
	return keys, out
}

func TestCommunityAndKeys(t *testing.T) {
	clearEnv(t)
	dsn := dbtest.DSN(t)

	out := mustRally(t, "community", "create", "--db", dsn, "--name", "Trading Club", "--uri", "trading-club", "--json")
	var created map[string]string
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("community create --json printed %q: %v", out, err)
	}
	if len(created) != 2 || !id.Valid(created["communityId"]) || !hex64.MatchString(created["apiKey"]) {
		t.Fatalf("community create --json = %v, want {communityId, apiKey (64 hex)}", created)
	}
	cid, firstKey := created["communityId"], created["apiKey"]

	// Same uri again: a clear conflict, naming the uri.
	_, _, err := rally(t, "community", "create", "--db", dsn, "--name", "Other Club", "--uri", "trading-club", "--json")
	if err == nil || !strings.Contains(err.Error(), "uri") || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate uri: err = %v, want 'A community with this uri already exists.'", err)
	}
	// Missing name and uri: every field named.
	if _, _, err := rally(t, "community", "create", "--db", dsn); err == nil ||
		!strings.Contains(err.Error(), "name") || !strings.Contains(err.Error(), "uri") {
		t.Fatalf("community create without name/uri: err = %v", err)
	}

	// Plain-text output shows the key too.
	out = mustRally(t, "community", "create", "--db", dsn, "--name", "Text Club", "--uri", "text-club", "--domain", "club.example.com")
	if !strings.Contains(out, "community ") || hex64Find.FindString(out) == "" {
		t.Fatalf("community create printed %q, want the id and the key", out)
	}

	out = mustRally(t, "key", "create", "--db", dsn, "--community", cid, "--name", "Store key",
		"--permissions", "appearance, store", "--expire-days", "3", "--json")
	var k keyJSON
	if err := json.Unmarshal([]byte(out), &k); err != nil {
		t.Fatalf("key create --json printed %q: %v", out, err)
	}
	if !id.Valid(k.KeyID) || k.CommunityID != cid || !hex64.MatchString(k.APIKey) || k.APIKey == firstKey ||
		strings.Join(k.Permissions, ",") != "appearance,store" {
		t.Fatalf("key create --json = %+v", k)
	}

	_, _, err = rally(t, "key", "create", "--db", dsn, "--community", cid, "--name", "Bad", "--permissions", "appearance,teleport")
	if err == nil || !strings.Contains(err.Error(), `"teleport"`) {
		t.Fatalf("unknown permission: err = %v, want it named", err)
	}

	keys, raw := listKeys(t, dsn, cid)
	if len(keys) != 2 {
		t.Fatalf("key list = %s, want 2 keys", raw)
	}
	if strings.Contains(raw, k.APIKey) || strings.Contains(raw, firstKey) || strings.Contains(raw, "apiKey") {
		t.Fatalf("key list leaks a secret: %s", raw)
	}
	byID := map[string]listedKey{}
	for _, lk := range keys {
		byID[lk.KeyID] = lk
		if !lk.IsActive {
			t.Fatalf("new key %s listed inactive", lk.KeyID)
		}
	}
	sk, ok := byID[k.KeyID]
	if !ok || sk.Name != "Store key" || sk.ExpireDate == nil || !strings.HasPrefix(k.APIKey, sk.Prefix) {
		t.Fatalf("listed store key = %+v (created %+v)", sk, k)
	}
	exp, err := time.Parse(time.RFC3339, *sk.ExpireDate)
	if err != nil {
		t.Fatalf("expireDate %q: %v", *sk.ExpireDate, err)
	}
	crt, err := time.Parse(time.RFC3339, sk.CreatedAt)
	if err != nil {
		t.Fatalf("createdAt %q: %v", sk.CreatedAt, err)
	}
	if got := exp.Sub(crt); got != 72*time.Hour {
		t.Fatalf("expireDate - createdAt = %v, want 72h for --expire-days 3", got)
	}

	out = mustRally(t, "key", "revoke", "--db", dsn, "--community", cid, "--key-id", k.KeyID)
	if !strings.Contains(out, k.KeyID) || !strings.Contains(out, "revoked") {
		t.Fatalf("key revoke printed %q", out)
	}
	keys, raw = listKeys(t, dsn, cid)
	if len(keys) != 2 {
		t.Fatalf("key list after revoke = %s, want 2 keys", raw)
	}
	for _, lk := range keys {
		if want := lk.KeyID != k.KeyID; lk.IsActive != want {
			t.Fatalf("after revoking %s, key %s isActive = %v, want %v", k.KeyID, lk.KeyID, lk.IsActive, want)
		}
	}

	// Plain-text list: a header and one row per key, never a secret.
	out = mustRally(t, "key", "list", "--db", dsn, "--community", cid)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("key list printed %q, want a header and 2 rows", out)
	}
	if strings.Contains(out, k.APIKey) || strings.Contains(out, firstKey) {
		t.Fatalf("key list leaks a secret: %q", out)
	}

	// Revoking a key of another community, or one that does not exist, fails.
	if _, _, err := rally(t, "key", "revoke", "--db", dsn, "--community", id.New(time.Now()), "--key-id", k.KeyID); err == nil {
		t.Fatal("revoked a key through another community")
	}
	if _, _, err := rally(t, "key", "revoke", "--db", dsn, "--community", cid, "--key-id", id.New(time.Now())); err == nil {
		t.Fatal("revoking an unknown key succeeded")
	}
}

// freeAddr returns a loopback address that was free a moment ago: serve
// listens on --addr itself, so the test picks the port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// server is one `rally serve` running in the background.
type server struct {
	base        string
	stdout      *syncBuffer
	stderr      *syncBuffer
	cancel      context.CancelFunc
	done        chan error
	interrupted bool
}

// startServe runs `rally serve` with args on a fresh port and waits until
// /healthz answers.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{base: "http://" + addr, stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- run(ctx, append([]string{"serve", "--addr", addr, "--access-log=false"}, args...), s.stdout, s.stderr)
	}()
	t.Cleanup(func() {
		if !s.interrupted {
			s.stop(t)
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	for range 600 {
		select {
		case err := <-s.done:
			s.interrupted = true
			t.Fatalf("serve exited before becoming healthy: %v\nstderr: %s", err, s.stderr.String())
		default:
		}
		resp, err := client.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve never became healthy at %s\nstderr: %s", s.base, s.stderr.String())
	return nil
}

// stop cancels serve's context and returns what run returned.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	s.interrupted = true
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not return after its context was cancelled")
		return nil
	}
}

func createCommunity(t *testing.T, base, key, uri string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/management/communities",
		strings.NewReader(`{"name":"Club `+uri+`","uri":"`+uri+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestServe(t *testing.T) {
	clearEnv(t)
	dsn := dbtest.DSN(t)
	keyFile := filepath.Join(t.TempDir(), "admin.key")

	s := startServe(t, "--db", dsn, "--admin-key-file", keyFile)
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("admin key file: %v", err)
	}
	key := strings.TrimSpace(string(b))
	if !hex64.MatchString(key) {
		t.Fatalf("admin key file holds %q, want 64 hex", b)
	}
	if hex64Find.MatchString(s.stdout.String()) {
		t.Fatalf("admin key file configured, yet stdout shows a key: %q", s.stdout.String())
	}
	if st := createCommunity(t, s.base, key, "serve-club"); st != http.StatusCreated {
		t.Fatalf("POST /v1/management/communities with the admin key: %d, want 201", st)
	}
	if st := createCommunity(t, s.base, strings.Repeat("0", 64), "nope-club"); st != http.StatusUnauthorized {
		t.Fatalf("POST /v1/management/communities with a made-up key: %d, want 401", st)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("serve after cancel returned %v, want nil (graceful shutdown)\nstderr: %s", err, s.stderr.String())
	}
	if !strings.Contains(s.stderr.String(), "shutting down") {
		t.Fatalf("stderr %q lacks the shutdown log line", s.stderr.String())
	}

	// Second start on the same database: no new admin key, neither in the
	// file nor on stdout; the first key still works.
	if err := os.WriteFile(keyFile, []byte("sentinel\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := startServe(t, "--db", dsn, "--admin-key-file", keyFile)
	if b, _ := os.ReadFile(keyFile); string(b) != "sentinel\n" {
		t.Fatalf("second serve rewrote the admin key file: %q", b)
	}
	if st := createCommunity(t, s2.base, key, "second-club"); st != http.StatusCreated {
		t.Fatalf("first admin key after restart: %d, want 201", st)
	}
	if err := s2.stop(t); err != nil {
		t.Fatalf("second serve returned %v", err)
	}
	s3 := startServe(t, "--db", dsn)
	if out := s3.stdout.String(); hex64Find.MatchString(out) || strings.Contains(out, "Platform-admin key") {
		t.Fatalf("third serve (no key file) printed a new admin key: %q", out)
	}
	if err := s3.stop(t); err != nil {
		t.Fatalf("third serve returned %v", err)
	}
}

func TestServePrintsAdminKeyToStdout(t *testing.T) {
	clearEnv(t)
	s := startServe(t, "--db", dbtest.DSN(t))
	key := hex64Find.FindString(s.stdout.String())
	if key == "" {
		t.Fatalf("first serve without a key file: stdout %q, want the admin key", s.stdout.String())
	}
	if st := createCommunity(t, s.base, key, "stdout-club"); st != http.StatusCreated {
		t.Fatalf("printed admin key: %d, want 201", st)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("serve returned %v", err)
	}
}

func TestServeAddressInUse(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, _, err = rally(t, "serve", "--db", dbtest.DSN(t), "--addr", ln.Addr().String(), "--admin-key-file", filepath.Join(t.TempDir(), "k"))
	if err == nil || !strings.Contains(err.Error(), "listen on "+ln.Addr().String()) {
		t.Fatalf("serve on a taken address: err = %v, want a listen error naming it", err)
	}
}
