package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

//go:embed migrations
var migrations embed.FS

func (d *DB) provider() (*goose.Provider, error) {
	dialect := goose.DialectSQLite3
	if d.Dialect == Postgres {
		dialect = goose.DialectPostgres
	}
	sub, err := fs.Sub(migrations, "migrations/"+string(d.Dialect))
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", d.Dialect, err)
	}
	p, err := goose.NewProvider(dialect, d.Writer, sub)
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
	return SchemaState{Current: cur, Target: target}, nil
}
