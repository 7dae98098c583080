package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/rallyhq/rally/internal/db"
)

// Migrate applies River's own schema migrations (its job, leader, queue and
// notification tables) for d's dialect and returns the names of those it
// applied, in order, as river/NNN_name. It is idempotent; run it after
// db.Migrate, from `rally migrate` and at start.
func Migrate(ctx context.Context, d *db.DB) ([]string, error) {
	var driver riverdriver.Driver[*sql.Tx]
	switch d.Dialect {
	case db.SQLite:
		driver = riversqlite.New(d.Writer)
	case db.Postgres:
		driver = riverdatabasesql.New(d.Writer)
	default:
		return nil, fmt.Errorf("migrate job tables: unsupported dialect %q", d.Dialect)
	}
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("migrate job tables: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("migrate job tables: %w", err)
	}
	applied := make([]string, 0, len(res.Versions))
	for _, v := range res.Versions {
		applied = append(applied, fmt.Sprintf("river/%03d_%s", v.Version, v.Name))
	}
	return applied, nil
}
