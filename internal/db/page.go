package db

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Scanner is a row to scan: *sql.Row and *sql.Rows.
type Scanner interface{ Scan(...any) error }

// ListPage counts the rows of countSQL and reads the page [skip,
// skip+limit) of listSQL (which takes the same args and ends in its ORDER
// BY), scanning each row with scan. The page is never nil.
func ListPage[T any](ctx context.Context, d *DB, countSQL, listSQL string, args []any, skip, limit int,
	scan func(Scanner) (T, error)) ([]T, int, error) {
	var total int
	if err := d.QueryRow(ctx, countSQL, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count: %w", err)
	}
	rows, err := d.Query(ctx, listSQL+" LIMIT ? OFFSET ?", append(args, limit, skip)...)
	out, err := Collect(rows, err, "list", scan)
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// Collect reads every row of a query's result (rows, err) with scan and
// closes rows; what names the read in errors. The result is never nil.
func Collect[T any](rows *sql.Rows, err error, what string, scan func(Scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// In returns a parenthesised list of n placeholders, for "x IN " + In(n)
// and for one row of a VALUES list: In(3) is "(?, ?, ?)". n is at least 1.
func In(n int) string { return "(?" + strings.Repeat(", ?", n-1) + ")" }

// ValueRows returns the placeholders of a multi-row VALUES list of n rows
// of cols columns each: ValueRows(2, 3) is "(?, ?, ?), (?, ?, ?)".
func ValueRows(n, cols int) string {
	if n <= 0 || cols <= 0 {
		return ""
	}
	row := In(cols)
	var b strings.Builder
	b.Grow(n*(len(row)+2) - 2)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}
