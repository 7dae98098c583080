package app_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/app"
	"github.com/rallyhq/rally/internal/blob"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/config"
	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/errs"
)

// blobsVersion is the migration that moved uploaded files into the
// database.
const blobsVersion = 22

// TestUpgradeMovesFilesIntoDatabase upgrades a database from before the
// blobs table, with its files in the old <data dir>/files layout: the files
// are imported, the folder is renamed, the keys already recorded in users
// and badge applications are found by the sweep, and orphans are not.
func TestUpgradeMovesFilesIntoDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := dbtest.DSN(t)
	d := openDB(t, dsn)
	if _, err := app.EnsureSchema(ctx, d, false); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := d.Schema(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Current < blobsVersion {
			break
		}
		if _, err := d.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}

	dataDir := t.TempDir()
	files := map[string][]byte{}
	for _, f := range []struct {
		ct   string
		data []byte
	}{
		{"image/webp", []byte("RIFF\x24\x00\x00\x00WEBPVP8 the avatar")},
		{"application/pdf", []byte("%PDF-1.7 the proof")},
		{"image/png", []byte("\x89PNG an orphan")},
	} {
		key, _ := blob.Key(f.data, f.ct)
		files[key] = f.data
		p := filepath.Join(dataDir, "files", key[:2], key)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	avatar, _ := blob.Key([]byte("RIFF\x24\x00\x00\x00WEBPVP8 the avatar"), "image/webp")
	proof, _ := blob.Key([]byte("%PDF-1.7 the proof"), "application/pdf")
	orphan, _ := blob.Key([]byte("\x89PNG an orphan"), "image/png")
	now := time.Now().UnixMilli()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO communities (id, name, name_key, uri, uri_key, created_at, updated_at) VALUES ('c1', 'C', 'c', 'c', 'c', ?, ?)`, []any{now, now}},
		{`INSERT INTO users (id, email, email_key, username, username_key, token_key, avatar, created_at, updated_at)
			VALUES ('u1', 'a@example.com', 'a@example.com', 'a', 'a', 'k', ?, ?, ?)`, []any{"https://old.example.com/v1/files/" + avatar, now, now}},
		{`INSERT INTO members (community_id, user_id, created_at, updated_at) VALUES ('c1', 'u1', ?, ?)`, []any{now, now}},
		{`INSERT INTO badges (id, community_id, title, title_key, action, created_at, updated_at) VALUES ('b1', 'c1', 'B', 'b', 'custom', ?, ?)`, []any{now, now}},
		{`INSERT INTO badge_applications (id, community_id, badge_id, user_id, status, proof_file_url, created_at)
			VALUES ('a1', 'c1', 'b1', 'u1', 'pending', ?, ?)`, []any{"http://127.0.0.1:8080/v1/files/" + proof, now}},
	} {
		if _, err := d.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}

	cfg := config.Default()
	cfg.DSN, cfg.DataDir = dsn, dataDir
	clk := clock.NewManual(time.Now())
	a, err := app.Open(ctx, cfg, nil, app.Options{AllowUpgrade: true, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for key, data := range files {
		f, err := a.Files.Open(ctx, key)
		if err != nil {
			t.Fatalf("imported %s: %v", key, err)
		}
		if got, _ := io.ReadAll(f); !bytes.Equal(got, data) {
			t.Fatalf("imported %s differs", key)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "files")); !os.IsNotExist(err) {
		t.Fatalf("the old folder is still in use: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "files"+blob.ImportedSuffix, avatar[:2], avatar)); err != nil {
		t.Fatalf("the old folder was not kept as files%s: %v", blob.ImportedSuffix, err)
	}
	var avatarFile, proofKey string
	if err := d.QueryRow(ctx, "SELECT avatar_file FROM users WHERE id = 'u1'").Scan(&avatarFile); err != nil || avatarFile != avatar {
		t.Fatalf("avatar_file %q %v, want %s", avatarFile, err, avatar)
	}
	if err := d.QueryRow(ctx, "SELECT proof_file_key FROM badge_applications WHERE id = 'a1'").Scan(&proofKey); err != nil || proofKey != proof {
		t.Fatalf("proof_file_key %q %v, want %s", proofKey, err, proof)
	}

	clk.Advance(blob.DefaultGrace + time.Minute)
	if n, err := a.Files.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v, want the orphan only", n, err)
	}
	if _, err := a.Files.Open(ctx, orphan); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("orphan: %v", err)
	}

	// A second start has nothing left to import.
	b, err := app.Open(ctx, cfg, nil, app.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}
