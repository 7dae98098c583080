// Command rally is the Rally server and its administration tool.
//
//	rally serve              start the API server (embedded SQLite by default)
//	rally migrate            apply database schema migrations
//	rally community create   create a community and its first API key
//	rally key create|list|revoke
//	rally version
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/rallyhq/rally/internal/app"
	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/community"
	"github.com/rallyhq/rally/internal/config"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/jobs"
	"github.com/rallyhq/rally/internal/jsonx"
)

// serveGCPercent is serve's GOGC when the environment does not set one.
const serveGCPercent = 400

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `Rally: self-hosted community engagement and loyalty server.

Usage:
  rally serve [--addr A] [--data DIR] [--db DSN] [--migrate] [--admin-key-file F]
  rally migrate [--data DIR] [--db DSN]
  rally community create --name N --uri U [--domain D] [--json]
  rally key create --community ID --name N --permissions a,b [--expire-days N] [--json]
  rally key list --community ID [--json]
  rally key revoke --community ID --key-id ID
  rally version
  rally help

Every command takes --help. Settings also come from RALLY_ADDR, RALLY_DATA, RALLY_DB,
RALLY_MIGRATE, RALLY_ADMIN_KEY_FILE, RALLY_LOG_LEVEL, RALLY_ACCESS_LOG, RALLY_MAX_BODY_BYTES.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "rally:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, cfg, rest, stdout, stderr)
	case "migrate":
		return migrate(ctx, cfg, rest, stdout, stderr)
	case "community":
		if len(rest) == 0 || rest[0] != "create" {
			return errors.New("usage: rally community create --name N --uri U [--domain D] [--json]")
		}
		return communityCreate(ctx, cfg, rest[1:], stdout, stderr)
	case "key":
		if len(rest) == 0 {
			return errors.New("usage: rally key create|list|revoke ...")
		}
		switch rest[0] {
		case "create":
			return keyCreate(ctx, cfg, rest[1:], stdout, stderr)
		case "list":
			return keyList(ctx, cfg, rest[1:], stdout, stderr)
		case "revoke":
			return keyRevoke(ctx, cfg, rest[1:], stdout, stderr)
		}
		return fmt.Errorf("unknown key command %q (want create, list or revoke)", rest[0])
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return "rally " + v
}

// flags builds a command's flag set whose --help prints to stderr.
func flags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: rally %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func serve(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("serve", "serve [flags]", stderr)
	cfg.ServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	if _, set := os.LookupEnv("GOGC"); !set {
		// The server's live heap is a few MiB, so the default GOGC=100
		// collects every few milliseconds under load; 400 keeps the heap
		// small and cuts collection work and the latency tail (bench/).
		debug.SetGCPercent(serveGCPercent)
	}
	a, err := app.Open(ctx, cfg, log, app.Options{AllowUpgrade: cfg.Migrate, Stdout: stdout})
	if err != nil {
		return err
	}
	defer a.Close()
	for _, m := range a.Applied {
		log.Info("migration applied", "migration", m)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	return a.Serve(ctx, ln)
}

func migrate(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("migrate", "migrate [--data DIR] [--db DSN]", stderr)
	cfg.DatabaseFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := db.Open(ctx, cfg.DatabaseDSN())
	if err != nil {
		return err
	}
	defer d.Close()
	applied, err := d.Migrate(ctx)
	if err != nil {
		return err
	}
	queue, err := jobs.Migrate(ctx, d)
	if err != nil {
		return err
	}
	applied = append(applied, queue...)
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "schema is up to date")
	}
	for _, m := range applied {
		fmt.Fprintln(stdout, "applied", m)
	}
	return nil
}

// openWith parses an admin command's args into fs (whose flags write into
// cfg), then opens the configured database.
func openWith(ctx context.Context, fs *flag.FlagSet, cfg *config.Config, args []string, stderr io.Writer) (*app.App, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return app.Open(ctx, *cfg, newLogger(*cfg, stderr), app.Options{Clock: clock.System{}})
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func communityCreate(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("community create", "community create --name N --uri U [--domain D] [--json]", stderr)
	cfg.DatabaseFlags(fs)
	name := fs.String("name", "", "community name (required)")
	uri := fs.String("uri", "", "community URI slug (required)")
	domain := fs.String("domain", "", "custom domain")
	asJSON := fs.Bool("json", false, `print {"communityId":"...","apiKey":"..."}`)
	a, err := openWith(ctx, fs, &cfg, args, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	in := community.Input{Name: jsonx.Some(*name), URI: jsonx.Some(*uri)}
	if *domain != "" {
		in.Domain = jsonx.Some(*domain)
	}
	c, _, secret, err := a.Communities.Create(ctx, in)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, map[string]string{"communityId": c.ID, "apiKey": secret})
	}
	fmt.Fprintf(stdout, "community %s created (%s)\nAPI key (shown once, holds every permission):\n%s\n", c.ID, c.URI, secret)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func keyCreate(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("key create", "key create --community ID --name N --permissions a,b [--expire-days N] [--json]", stderr)
	cfg.DatabaseFlags(fs)
	communityID := fs.String("community", "", "community id (required)")
	name := fs.String("name", "", "key name (required)")
	perms := fs.String("permissions", "", "comma-separated permissions: "+strings.Join(auth.Permissions, ","))
	days := fs.Int("expire-days", 0, "lifetime in days (0 = never expires)")
	asJSON := fs.Bool("json", false, "print JSON")
	a, err := openWith(ctx, fs, &cfg, args, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	k, secret, err := a.Keys.Create(ctx, auth.NewKey{CommunityID: *communityID, Name: *name, Permissions: splitList(*perms), ExpireDays: *days})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, map[string]any{"keyId": k.ID, "communityId": k.CommunityID, "apiKey": secret, "permissions": k.Permissions})
	}
	fmt.Fprintf(stdout, "key %s created\nAPI key (shown once):\n%s\n", k.ID, secret)
	return nil
}

func keyList(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("key list", "key list --community ID [--json]", stderr)
	cfg.DatabaseFlags(fs)
	communityID := fs.String("community", "", "community id (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	a, err := openWith(ctx, fs, &cfg, args, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	keys, err := a.Keys.List(ctx, *communityID)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]map[string]any, 0, len(keys))
		for _, k := range keys {
			out = append(out, map[string]any{"keyId": k.ID, "name": k.Name, "prefix": k.Prefix, "permissions": k.Permissions,
				"isActive": k.IsActive, "expireDate": k.ExpireDate, "createdAt": clock.Format(k.CreatedAt)})
		}
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tACTIVE\tEXPIRES\tPERMISSIONS")
	for _, k := range keys {
		exp := "never"
		if k.ExpireDate != nil {
			exp = clock.Format(*k.ExpireDate)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\n", k.ID, k.Name, k.Prefix, k.IsActive, exp, strings.Join(k.Permissions, ","))
	}
	return tw.Flush()
}

func keyRevoke(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("key revoke", "key revoke --community ID --key-id ID", stderr)
	cfg.DatabaseFlags(fs)
	communityID := fs.String("community", "", "community id (required)")
	keyID := fs.String("key-id", "", "key id (required)")
	a, err := openWith(ctx, fs, &cfg, args, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.Keys.Revoke(ctx, *communityID, *keyID); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s revoked\n", *keyID)
	return nil
}
