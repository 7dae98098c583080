package blob

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rallyhq/rally/internal/errs"
)

func TestPutOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := New(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("\x89PNG\r\n\x1a\nimage")
	key, err := s.Put(data, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Put(data, "image/png")
	if err != nil || again != key || ContentType(key) != "image/png" {
		t.Fatalf("same bytes, same key: %s %s %v", key, again, err)
	}
	f, err := s.Open(key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if string(got) != string(data) {
		t.Fatalf("read back %q", got)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Join(dir, "files", key[:2]))
	if len(entries) != 1 {
		t.Fatalf("files in the shard: %d", len(entries))
	}
	pdf, err := s.Put([]byte("%PDF-1.7\n%%EOF\n"), "application/pdf")
	if err != nil || !strings.HasSuffix(pdf, ".pdf") || ContentType(pdf) != "application/pdf" {
		t.Fatalf("PDF: %s %v", pdf, err)
	}
	if _, err := s.Put(data, "text/plain"); err == nil {
		t.Fatal("unsupported type stored")
	}
	for _, bad := range []string{"../" + key, key[:10] + ".png", key[:64] + ".exe", "", key[:64] + ".gif"} {
		if _, err := s.Open(bad); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("Open(%q): %v", bad, err)
		}
	}
}
