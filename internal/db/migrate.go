package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"strings"
	"testing/fstest"

	"github.com/pressly/goose/v3"
)

// migrations hold one SQL file per schema version, written once in the
// portable subset both engines share; postgresRewrites adapts the few
// spellings that differ.
//
//go:embed migrations/*.sql
var migrations embed.FS

// postgresRewrites turns the SQLite spelling of a migration into
// PostgreSQL's: auto-numbered keys, and byte strings (a column declared
// " BLOB NOT NULL" is bytea).
var postgresRewrites = strings.NewReplacer("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY",
	" BLOB NOT NULL", " BYTEA NOT NULL")

// migrationFS returns the migrations in d's dialect.
func (d *DB) migrationFS() (fs.FS, error) {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	out := fstest.MapFS{}
	for _, name := range files {
		b, err := migrations.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		text := string(b)
		if d.Dialect == Postgres {
			text = postgresRewrites.Replace(text)
		}
		out[strings.TrimPrefix(name, "migrations/")] = &fstest.MapFile{Data: []byte(text), Mode: 0o444}
	}
	return out, nil
}

func (d *DB) provider() (*goose.Provider, error) {
	dialect := goose.DialectSQLite3
	if d.Dialect == Postgres {
		dialect = goose.DialectPostgres
	}
	sub, err := d.migrationFS()
	if err != nil {
		return nil, err
	}
	// Versions are reserved per change while work happens in parallel, so a
	// lower-numbered migration may land after a higher one: apply it anyway.
	p, err := goose.NewProvider(dialect, d.Writer, sub, goose.WithAllowOutofOrder(true))
	if err != nil {
		return nil, fmt.Errorf("migration provider: %w", err)
	}
	return p, nil
}

// Migrate applies every pending schema migration and returns the names of
// those it applied, in order.
func (d *DB) Migrate(ctx context.Context) ([]string, error) {
	p, err := d.provider()
	if err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	applied := make([]string, 0, len(res))
	for _, r := range res {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
}

// SchemaState tells how the database's schema compares with this binary's.
type SchemaState struct {
	// Current is the newest applied migration version (0 on an empty database).
	Current int64
	// Target is the newest migration this binary carries.
	Target int64
	// Pending is true when some migration of the binary is not applied,
	// including one numbered below Current.
	Pending bool
}

// Schema reports the applied and the embedded schema versions.
func (d *DB) Schema(ctx context.Context) (SchemaState, error) {
	p, err := d.provider()
	if err != nil {
		return SchemaState{}, err
	}
	cur, err := p.GetDBVersion(ctx)
	if err != nil {
		return SchemaState{}, fmt.Errorf("read schema version: %w", err)
	}
	srcs := p.ListSources()
	var target int64
	if len(srcs) > 0 {
		target = srcs[len(srcs)-1].Version
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return SchemaState{}, fmt.Errorf("check pending migrations: %w", err)
	}
	return SchemaState{Current: cur, Target: target, Pending: pending}, nil
}

// Rollback undoes the newest applied migration and returns its name; an
// operator's escape hatch after a bad upgrade, and how tests make an older
// schema.
func (d *DB) Rollback(ctx context.Context) (string, error) {
	p, err := d.provider()
	if err != nil {
		return "", err
	}
	res, err := p.Down(ctx)
	if err != nil {
		return "", fmt.Errorf("roll back migration: %w", err)
	}
	return res.Source.Path, nil
}
