package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ImportedSuffix is appended to the old files folder's name once its files
// are in the database.
const ImportedSuffix = ".imported"

// Import copies the files of the old on-disk layout (dir/<2 hex>/<key>,
// as Rally kept them before blobs moved into the database) into the store,
// then renames dir to dir+ImportedSuffix so later starts skip it. It is
// idempotent: a file already stored is not stored twice, and an import cut
// short is finished by the next one. When the folder cannot be renamed
// (files.imported exists already, say), that is logged and the folder is
// imported again at the next start. A file whose name is not a key, or
// whose bytes do not hash to its name, is skipped and logged. A missing dir
// imports nothing. It returns how many files it read into the store.
func (s *Store) Import(ctx context.Context, dir string) (int, error) {
	if st, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("import files from %s: %w", dir, err)
	} else if !st.IsDir() {
		return 0, fmt.Errorf("import files from %s: not a folder", dir)
	}
	n := 0
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || !e.Type().IsRegular() {
			return nil
		}
		name := e.Name()
		if !keyRE.MatchString(name) {
			s.log.WarnContext(ctx, "import files: skipped a file that is not a blob", "path", path)
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if key, _ := Key(data, ContentType(name)); key != name {
			s.log.WarnContext(ctx, "import files: skipped a file whose bytes do not match its name", "path", path)
			return nil
		}
		if _, err := s.Put(ctx, data, ContentType(name)); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("import files from %s: %w", dir, err)
	}
	if err := os.Rename(dir, dir+ImportedSuffix); err != nil {
		// Everything is in the database: serve anyway, and import again
		// (finding every file stored) at the next start.
		s.log.WarnContext(ctx, "imported files into the database, but could not rename the folder", "files", n, "from", dir, "error", err)
		return n, nil
	}
	s.log.InfoContext(ctx, "imported files into the database", "files", n, "from", dir, "kept_as", dir+ImportedSuffix)
	return n, nil
}
