package blob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/db/dbtest"
	"github.com/rallyhq/rally/internal/errs"
)

func newStore(t *testing.T) (*Store, *db.DB, *clock.Manual) {
	t.Helper()
	d := dbtest.Open(t)
	clk := clock.NewManual(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	s, err := New(Deps{DB: d, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return s, d, clk
}

func read(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	f, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != int64(len(b)) || f.ContentType != ContentType(key) {
		t.Fatalf("open %s: size %d for %d bytes, type %q", key, f.Size, len(b), f.ContentType)
	}
	return b
}

func count(t *testing.T, d *db.DB, where string, args ...any) int {
	t.Helper()
	var n int
	if err := d.QueryRow(context.Background(), "SELECT COUNT(*) FROM blobs "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPutOpen(t *testing.T) {
	s, d, _ := newStore(t)
	ctx := context.Background()
	data := []byte("\x89PNG\r\n\x1a\nimage")
	key, err := s.Put(ctx, data, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Put(ctx, data, "image/png")
	if err != nil || again != key || ContentType(key) != "image/png" {
		t.Fatalf("same bytes, same key: %s %s %v", key, again, err)
	}
	if got := read(t, s, key); !bytes.Equal(got, data) {
		t.Fatalf("read back %q", got)
	}
	if n := count(t, d, ""); n != 1 {
		t.Fatalf("rows after two puts of the same bytes: %d", n)
	}
	// Bytes that are not UTF-8 and hold NULs survive both engines.
	bin := make([]byte, 3<<20)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	pdf, err := s.Put(ctx, append([]byte("%PDF-1.7\n"), bin...), "application/pdf")
	if err != nil || !strings.HasSuffix(pdf, ".pdf") || ContentType(pdf) != "application/pdf" {
		t.Fatalf("PDF: %s %v", pdf, err)
	}
	if got := read(t, s, pdf); !bytes.Equal(got[9:], bin) {
		t.Fatal("PDF read back differs")
	}
	if _, err := s.Put(ctx, data, "text/plain"); err == nil {
		t.Fatal("unsupported type stored")
	}
	unknown := strings.Repeat("0", 64) + ".png"
	for _, bad := range []string{"../" + key, key[:10] + ".png", key[:64] + ".exe", "", key[:64] + ".gif", unknown} {
		if _, err := s.Open(ctx, bad); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("Open(%q): %v", bad, err)
		}
	}
}

func TestPutInRolledBackTx(t *testing.T) {
	s, d, _ := newStore(t)
	ctx := context.Background()
	var key string
	err := d.Tx(ctx, func(tx *db.Tx) error {
		var err error
		key, err = s.PutTx(ctx, tx, []byte("GIF89a rolled back"), "image/gif")
		if err != nil {
			return err
		}
		return errs.Conflictf("caller fails")
	})
	if errs.KindOf(err) != errs.Conflict {
		t.Fatalf("tx: %v", err)
	}
	if _, err := s.Open(ctx, key); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("a put rolled back with its transaction is still there: %v", err)
	}
}

func TestConcurrentPut(t *testing.T) {
	s, d, _ := newStore(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("RIFF....WEBPVP8 "), 4096)
	const n = 16
	keys := make([]string, n)
	errsOut := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			keys[i], errsOut[i] = s.Put(ctx, data, "image/webp")
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errsOut[i] != nil || keys[i] != keys[0] {
			t.Fatalf("put %d: %s %v (first %s)", i, keys[i], errsOut[i], keys[0])
		}
	}
	if c := count(t, d, ""); c != 1 {
		t.Fatalf("rows after %d concurrent puts of the same bytes: %d", n, c)
	}
	if got := read(t, s, keys[0]); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
}

// fixture inserts a community, a member and a badge for reference rows.
func fixture(t *testing.T, d *db.DB, now int64) (communityID, userID, badgeID string) {
	t.Helper()
	ctx := context.Background()
	communityID, userID, badgeID = "c0000000000000000000000a", "u0000000000000000000000a", "b0000000000000000000000a"
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO communities (id, name, name_key, uri, uri_key, created_at, updated_at) VALUES (?, 'C', 'c', 'c', 'c', ?, ?)`,
			[]any{communityID, now, now}},
		{`INSERT INTO users (id, email, email_key, username, username_key, token_key, created_at, updated_at)
			VALUES (?, 'a@example.com', 'a@example.com', 'a', 'a', 'k', ?, ?)`, []any{userID, now, now}},
		{`INSERT INTO members (community_id, user_id, created_at, updated_at) VALUES (?, ?, ?, ?)`, []any{communityID, userID, now, now}},
		{`INSERT INTO badges (id, community_id, title, title_key, action, created_at, updated_at) VALUES (?, ?, 'B', 'b', 'custom', ?, ?)`,
			[]any{badgeID, communityID, now, now}},
	} {
		if _, err := d.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return communityID, userID, badgeID
}

func TestSweep(t *testing.T) {
	s, d, clk := newStore(t)
	ctx := context.Background()
	t0 := clk.Now()
	communityID, userID, badgeID := fixture(t, d, t0.UnixMilli())
	put := func(name string) string {
		t.Helper()
		key, err := s.Put(ctx, []byte("\x89PNG "+name), "image/png")
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := d.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	apply := func(n int, key, status string, decided *int64) {
		t.Helper()
		exec(`INSERT INTO badge_applications (id, community_id, badge_id, user_id, status, proof_file_url, proof_file_key,
			decided_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, fmt.Sprintf("a%023d", n), communityID, badgeID, userID,
			status, "http://x/v1/files/"+key, key, decided, t0.UnixMilli())
	}
	avatar, replaced := put("avatar"), put("replaced avatar")
	exec("UPDATE users SET avatar = ?, avatar_file = ? WHERE id = ?", "http://x/v1/files/"+avatar, avatar, userID)
	upload := put("message image")
	exec(`INSERT INTO message_files (community_id, id, name, content_type, size, url, created_at) VALUES (?, ?, 'm', 'image/png', 1, 'u', ?)`,
		communityID, upload, t0.UnixMilli())
	pending, approved, rejectedRecently, rejectedLongAgo := put("pending"), put("approved"), put("rejected recently"), put("rejected long ago")
	apply(1, pending, "pending", nil)
	recent, longAgo := t0.Add(-24*time.Hour).UnixMilli(), t0.Add(-RejectedProofRetention-time.Hour).UnixMilli()
	apply(2, approved, "approved", &longAgo)
	apply(3, rejectedRecently, "rejected", &recent)
	apply(4, rejectedLongAgo, "rejected", &longAgo)
	orphan, reuploaded := put("orphan"), put("uploaded again")

	// Nothing is older than the grace period yet.
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep within the grace period: %d %v", n, err)
	}
	clk.Advance(DefaultGrace + time.Minute)
	young := put("young")
	if again := put("uploaded again"); again != reuploaded {
		t.Fatal("key changed")
	}
	n, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{replaced: true, rejectedLongAgo: true, orphan: true}
	if n != len(gone) {
		t.Fatalf("swept %d, want %d", n, len(gone))
	}
	for _, key := range []string{avatar, replaced, upload, pending, approved, rejectedRecently, rejectedLongAgo, orphan, reuploaded, young} {
		_, err := s.Open(ctx, key)
		if gone[key] && errs.KindOf(err) != errs.NotFound {
			t.Fatalf("%s should be swept: %v", key, err)
		}
		if !gone[key] && err != nil {
			t.Fatalf("%s should be kept: %v", key, err)
		}
	}
	// Once its references go, a blob is swept too.
	exec("DELETE FROM message_files WHERE id = ?", upload)
	exec("UPDATE users SET avatar = NULL, avatar_file = NULL")
	clk.Advance(2 * DefaultGrace)
	if n, err := s.Sweep(ctx); err != nil || n != 4 { // avatar, upload, reuploaded, young
		t.Fatalf("second sweep: %d %v", n, err)
	}
	if c := count(t, d, ""); c != 3 {
		t.Fatalf("blobs left: %d, want the 3 application proofs", c)
	}
}

func TestSweepPages(t *testing.T) {
	if testing.Short() {
		t.Skip("stores over a thousand blobs")
	}
	s, d, clk := newStore(t)
	ctx := context.Background()
	t0 := clk.Now()
	communityID, _, _ := fixture(t, d, t0.UnixMilli())
	// More old blobs than one page of the sweep, every third referenced.
	total := sweepPage + sweepPage/2
	kept := 0
	err := d.Tx(ctx, func(tx *db.Tx) error {
		for i := range total {
			key, err := s.PutTx(ctx, tx, fmt.Appendf(nil, "GIF89a %d", i), "image/gif")
			if err != nil {
				return err
			}
			if i%3 == 0 {
				kept++
				if _, err := tx.Exec(ctx, `INSERT INTO message_files (community_id, id, name, content_type, size, url, created_at)
					VALUES (?, ?, 'm', 'image/gif', 1, 'u', ?)`, communityID, key, t0.UnixMilli()); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultGrace + time.Second)
	n, err := s.Sweep(ctx)
	if err != nil || n != total-kept {
		t.Fatalf("swept %d (%v), want %d", n, err, total-kept)
	}
	if c := count(t, d, ""); c != kept {
		t.Fatalf("left %d, want %d", c, kept)
	}
}

func TestImport(t *testing.T) {
	s, d, _ := newStore(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "files")
	write := func(name string, data []byte) {
		t.Helper()
		p := filepath.Join(dir, name[:2], name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	png, pdf := []byte("\x89PNG old avatar"), []byte("%PDF-1.4 old proof")
	pngKey, _ := Key(png, "image/png")
	pdfKey, _ := Key(pdf, "application/pdf")
	write(pngKey, png)
	write(pdfKey, pdf)
	wrong := strings.Repeat("ab", 32) + ".jpg"
	write(wrong, []byte("not what the name says"))
	write(".upload-123", []byte("a temporary file"))
	// One of them is in the database already (an import cut short).
	if _, err := s.Put(ctx, png, "image/png"); err != nil {
		t.Fatal(err)
	}
	n, err := s.Import(ctx, dir)
	if err != nil || n != 2 {
		t.Fatalf("import: %d %v", n, err)
	}
	if !bytes.Equal(read(t, s, pngKey), png) || !bytes.Equal(read(t, s, pdfKey), pdf) {
		t.Fatal("imported bytes differ")
	}
	if c := count(t, d, ""); c != 2 {
		t.Fatalf("rows: %d", c)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("old folder still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir+ImportedSuffix, pngKey[:2], pngKey)); err != nil {
		t.Fatalf("renamed folder: %v", err)
	}
	// The next start has nothing to import.
	if n, err := s.Import(ctx, dir); err != nil || n != 0 {
		t.Fatalf("second import: %d %v", n, err)
	}
	// A folder that cannot be renamed (files.imported is taken) is
	// imported all the same, and kept.
	jpg := []byte("\xff\xd8\xff\xe0 later")
	jpgKey, _ := Key(jpg, "image/jpeg")
	write(jpgKey, jpg)
	if n, err := s.Import(ctx, dir); err != nil || n != 1 {
		t.Fatalf("import beside files.imported: %d %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, jpgKey[:2], jpgKey)); err != nil {
		t.Fatalf("the folder left in place: %v", err)
	}
	if !bytes.Equal(read(t, s, jpgKey), jpg) {
		t.Fatal("imported bytes differ")
	}
}

// BenchmarkOpen reads a 10 MiB blob (the largest upload) as serving does;
// -benchmem shows how many bytes one read allocates (the drivers' buffers
// included), against the 10 MiB the returned File holds.
func BenchmarkOpen(b *testing.B) {
	d := dbtest.Open(b)
	s, err := New(Deps{DB: d, Clock: clock.System{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte{0x5a}, 10<<20)
	key, err := s.Put(ctx, append([]byte("%PDF-"), data...), "application/pdf")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		f, err := s.Open(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, f); err != nil {
			b.Fatal(err)
		}
	}
}
