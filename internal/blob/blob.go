// Package blob stores uploaded files (avatars, message images, badge proof
// files) in a local directory, content-addressed: a file's key is the SHA-256 of its bytes plus an
// extension naming its type, so the same upload is stored once, a key never
// changes meaning, and readers may cache a key forever.
package blob

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/rallyhq/rally/internal/errs"
)

// types maps the extensions a key may carry to their Content-Type.
var types = map[string]string{
	"png":  "image/png",
	"jpg":  "image/jpeg",
	"gif":  "image/gif",
	"webp": "image/webp",
	"pdf":  "application/pdf",
}

// keyRE is the only shape a key has: 64 hex digits, a dot, an extension.
var keyRE = regexp.MustCompile(`^[0-9a-f]{64}\.(png|jpg|gif|webp|pdf)$`)

// Store keeps blobs under one directory.
type Store struct {
	dir string
}

// New returns a store rooted at dir, creating it when missing.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("blob store %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// Extension returns the key extension for a Content-Type the store keeps,
// and whether it keeps it.
func Extension(contentType string) (string, bool) {
	for ext, ct := range types {
		if ct == contentType {
			return ext, true
		}
	}
	return "", false
}

// ContentType returns the Content-Type of key ("" for a malformed key).
func ContentType(key string) string {
	if !keyRE.MatchString(key) {
		return ""
	}
	return types[key[strings.LastIndexByte(key, '.')+1:]]
}

func (s *Store) path(key string) string { return filepath.Join(s.dir, key[:2], key) }

// Put stores data of the given Content-Type and returns its key. The write
// is atomic: the bytes go to a temporary file that is renamed into place, so
// a reader never sees a partial file.
func (s *Store) Put(data []byte, contentType string) (string, error) {
	ext, ok := Extension(contentType)
	if !ok {
		return "", fmt.Errorf("put blob: unsupported type %q", contentType)
	}
	sum := sha256.Sum256(data)
	key := hex.EncodeToString(sum[:]) + "." + ext
	dst := s.path(key)
	if _, err := os.Stat(dst); err == nil {
		return key, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return "", fmt.Errorf("put blob: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".upload-*")
	if err != nil {
		return "", fmt.Errorf("put blob: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return "", fmt.Errorf("put blob %s: %w", key, err)
	}
	return key, nil
}

// Open opens the blob named key for reading. Unknown or malformed keys are
// NotFound.
func (s *Store) Open(key string) (*os.File, error) {
	if !keyRE.MatchString(key) {
		return nil, errs.NotFoundf("File not found.")
	}
	f, err := os.Open(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.NotFoundf("File not found.")
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", key, err)
	}
	return f, nil
}
