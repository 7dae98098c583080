package user

import (
	"context"
	"os"
	"testing"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/user/usertest"
)

func BenchmarkScratchSeed(b *testing.B) {
	p := os.Getenv("SCRATCH_DSN")
	if p == "" {
		b.Skip()
	}
	d, err := db.Open(context.Background(), p)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	c := usertest.Community(b, d)
	usertest.Seed(b, d, c, 100_000)
	b.Log(c)
}
