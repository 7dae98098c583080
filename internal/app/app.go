// Package app wires Rally together: configuration, database, services, the
// HTTP server and background workers, with graceful shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rallyhq/rally/api"
	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/badge"
	"github.com/rallyhq/rally/internal/blob"
	"github.com/rallyhq/rally/internal/channel"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/community"
	"github.com/rallyhq/rally/internal/config"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/event"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/httpapi"
	"github.com/rallyhq/rally/internal/idem"
	"github.com/rallyhq/rally/internal/jobs"
	"github.com/rallyhq/rally/internal/leaderboard"
	"github.com/rallyhq/rally/internal/mail"
	"github.com/rallyhq/rally/internal/message"
	"github.com/rallyhq/rally/internal/metric"
	"github.com/rallyhq/rally/internal/milestone"
	"github.com/rallyhq/rally/internal/minigame"
	"github.com/rallyhq/rally/internal/realtime"
	"github.com/rallyhq/rally/internal/redeem"
	"github.com/rallyhq/rally/internal/referral"
	"github.com/rallyhq/rally/internal/role"
	"github.com/rallyhq/rally/internal/store"
	"github.com/rallyhq/rally/internal/streak"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/userfield"
	"github.com/rallyhq/rally/internal/wallet"
	"github.com/rallyhq/rally/internal/xp"
)

// Options tune how an App is built; the zero value is production.
type Options struct {
	// Clock replaces the wall clock (tests move time with it).
	Clock clock.Clock
	// PollInterval is how often background workers look for work.
	PollInterval time.Duration
	// AllowUpgrade lets Open apply migrations to an older schema.
	AllowUpgrade bool
	// Stdout receives the platform-admin key when no AdminKeyFile is
	// configured (default os.Stdout).
	Stdout io.Writer
}

// App is a wired Rally: database, services and the HTTP handler.
type App struct {
	Config      config.Config
	Log         *slog.Logger
	DB          *db.DB
	Clock       clock.Clock
	Queue       *jobs.Queue
	Outbox      *event.Outbox
	Feed        *event.Feed
	Keys        *auth.Keys
	Communities *community.Service
	Users       *user.Store
	Roles       *role.Service
	UserFields  *userfield.Service
	Store       *store.Service
	Sessions    *auth.Sessions
	Accounts    *auth.Accounts
	Mail        *mail.Mailer
	Wallet      *wallet.Service
	XP          *xp.Service
	Idempotency *idem.Keeper
	// Streaks keeps streak definitions, members' streaks and login streaks.
	Streaks *streak.Service
	// MiniGames runs the spin wheel.
	MiniGames *minigame.Service
	// Gamification holds XP settings, tiers, rewards for activity and history.
	Gamification *gamification.Service
	// Referrals keeps referral codes, programs and progress.
	Referrals *referral.Service
	// Milestones keeps milestones and members' achievements.
	Milestones *milestone.Service
	// Redeem runs store purchases, orders and redemption statuses.
	Redeem *redeem.Service
	// Leaderboards ranks members; its hooks keep scores live.
	Leaderboards *leaderboard.Service
	// UserService holds the partner-facing user rules.
	UserService *user.Service
	// Files keeps uploaded files in the database (blobs table) and sweeps
	// the unreferenced ones.
	Files *blob.Store
	// Badges holds badges, their awards and applications.
	Badges *badge.Service
	// Channels and Messages hold channels and messaging.
	Channels *channel.Service
	Messages *message.Service
	// Realtime is the live message stream's hub; Serve starts and stops it.
	Realtime *realtime.Hub
	// Applied lists the migrations Open applied.
	Applied []string

	registry *prometheus.Registry
	handler  *httpapi.Server
	stdout   io.Writer
}

// ErrSchemaOutdated means the database's schema is older than the binary
// and upgrading was not allowed.
var ErrSchemaOutdated = errors.New("database schema is older than this binary")

// Open connects to the configured database, brings the schema up (always on
// an empty database, on an older one only when opts.AllowUpgrade) and builds
// every service.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) (*App, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	d, err := db.Open(ctx, cfg.DatabaseDSN())
	if err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Log: log, DB: d, Clock: opts.Clock, stdout: opts.Stdout}
	if a.Applied, err = EnsureSchema(ctx, d, opts.AllowUpgrade); err != nil {
		d.Close()
		return nil, err
	}
	if err := a.build(ctx, opts); err != nil {
		d.Close()
		return nil, err
	}
	return a, nil
}

// EnsureSchema applies migrations to an empty database, or to an older one
// when allowUpgrade is set; it refuses a schema newer than the binary. The
// job queue's own tables are brought up to date too.
func EnsureSchema(ctx context.Context, d *db.DB, allowUpgrade bool) ([]string, error) {
	st, err := d.Schema(ctx)
	if err != nil {
		return nil, err
	}
	var applied []string
	switch {
	case st.Current > st.Target:
		return nil, fmt.Errorf("database schema version %d is newer than this binary's %d: run a newer rally", st.Current, st.Target)
	case st.Pending && st.Current > 0 && !allowUpgrade:
		return nil, fmt.Errorf("%w (version %d, binary needs %d): run `rally migrate` first, or start with `rally serve --migrate`",
			ErrSchemaOutdated, st.Current, st.Target)
	case st.Pending:
		if applied, err = d.Migrate(ctx); err != nil {
			return nil, err
		}
	}
	queueApplied, err := jobs.Migrate(ctx, d)
	if err != nil {
		return nil, err
	}
	return append(applied, queueApplied...), nil
}

func (a *App) build(ctx context.Context, opts Options) error {
	q, err := jobs.New(jobs.Config{DB: a.DB, Logger: a.Log.With("component", "jobs"), PollInterval: opts.PollInterval})
	if err != nil {
		return err
	}
	a.Queue = q
	// Activity events change nothing lookups cache (see Outbox.Version).
	a.Outbox = event.NewOutbox(event.OutboxDeps{Clock: a.Clock, Queue: q, Quiet: []string{
		message.EventPosted, message.EventChannelPosted, message.EventReacted, message.EventUnreacted,
		message.EventEdited, message.EventDeleted, "xp.awarded", gamification.EventUserVisited,
	}})
	a.Feed = event.NewFeed(event.FeedDeps{DB: a.DB})
	a.Streaks = streak.NewService(streak.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox})
	a.Keys = auth.NewKeys(auth.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox})
	a.Communities = community.NewService(community.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Keys: a.Keys})
	a.Users = user.NewStore(user.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox})
	a.Roles = role.NewService(role.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Users: a.Users})
	a.Wallet = wallet.NewService(wallet.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Users: a.Users})
	a.XP = xp.NewService(xp.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Wallet: a.Wallet})
	a.Gamification = gamification.NewService(gamification.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, XP: a.XP, Users: a.Users})
	a.XP.AddHook(a.Gamification.LevelHook)
	metrics := metric.NewReader(a.Gamification)
	a.Referrals = referral.NewService(referral.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, XP: a.XP, Metrics: metrics})
	a.Milestones = milestone.NewService(milestone.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, XP: a.XP, Metrics: metrics})
	dispatcher, err := event.NewDispatcher(event.DispatcherDeps{
		DB: a.DB, Clock: a.Clock, Queue: q, Logger: a.Log.With("component", "events"),
		Subscribers: []event.Subscriber{a.Feed.Subscriber(), a.Streaks.Subscriber(), a.Gamification.Subscriber(),
			a.Referrals.Subscriber(), a.Milestones.Subscriber()}, Outbox: a.Outbox,
	})
	if err != nil {
		return err
	}
	a.Leaderboards = leaderboard.NewService(leaderboard.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Users: a.Users})
	a.XP.AddHook(a.Leaderboards.XPHook)
	a.Wallet.AddHook(a.Leaderboards.WalletHook)
	if a.Idempotency, err = idem.New(idem.Deps{DB: a.DB, Clock: a.Clock, Queue: q}); err != nil {
		return err
	}
	a.UserFields = userfield.NewService(userfield.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Users: a.Users})
	a.Store = store.NewService(store.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox})
	a.MiniGames = minigame.NewService(minigame.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, XP: a.XP, Wallet: a.Wallet, Store: a.Store})
	a.Redeem = redeem.NewService(redeem.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Store: a.Store, Wallet: a.Wallet,
		Users: a.Users, Roles: a.Roles})
	if a.Mail, err = mail.New(mail.Deps{DB: a.DB, Clock: a.Clock, Queue: q, Logger: a.Log.With("component", "mail"), SMTPURL: a.Config.SMTPURL}); err != nil {
		return err
	}
	if a.Sessions, err = auth.NewSessions(ctx, auth.SessionDeps{DB: a.DB, Clock: a.Clock, Events: a.Outbox}); err != nil {
		return err
	}
	if a.Accounts, err = auth.NewAccounts(auth.AccountsDeps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Queue: q, Logger: a.Log,
		Users: a.Users, Keys: a.Keys, Sessions: a.Sessions, Mail: a.Mail, Hosts: a.Communities}); err != nil {
		return err
	}
	if a.Files, err = blob.New(blob.Deps{DB: a.DB, Clock: a.Clock, Queue: q, Logger: a.Log.With("component", "blob")}); err != nil {
		return err
	}
	// Files uploaded before blobs moved into the database are imported
	// once; the folder is then renamed files.imported.
	if _, err := a.Files.Import(ctx, filepath.Join(a.Config.DataDir, "files")); err != nil {
		return err
	}
	a.Channels = channel.NewService(channel.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Roles: a.Roles})
	a.Messages = message.NewService(message.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Users: a.Users, Roles: a.Roles,
		Channels: a.Channels, Files: a.Files, Versions: a.Outbox})
	a.UserService = user.NewService(user.ServiceDeps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Store: a.Users,
		Fields: userFields{a.UserFields}, Roles: a.Roles,
		Counters:      counters{wallet: a.Wallet, xp: a.XP, streaks: a.Streaks, levels: a.Gamification, messages: a.Messages, clock: a.Clock},
		CheckPassword: auth.CheckPasswordStrength, HashPassword: auth.HashPassword, Mail: a.Mail, Referrals: a.Referrals})
	a.Badges = badge.NewService(badge.Deps{DB: a.DB, Clock: a.Clock, Events: a.Outbox, Users: a.Users, XP: a.XP, Files: a.Files})
	a.Realtime = realtime.New(realtime.Deps{DB: a.DB, Outbox: a.Outbox, Access: a.Messages, Logger: a.Log.With("component", "realtime"),
		Config: realtime.Config{PingInterval: a.Config.RealtimePing, SendBuffer: a.Config.RealtimeBuffer,
			PermissionTTL: a.Config.RealtimePermissionTTL}})
	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		a.Outbox.Metrics(), dispatcher.Metrics(), a.Realtime.Metrics())
	a.handler = httpapi.New(httpapi.Deps{
		Logger: a.Log, DB: a.DB, Keys: a.Keys, Communities: a.Communities, Events: a.Feed,
		Grants: a.Roles, Roles: a.Roles, UserFields: a.UserFields, Store: a.Store,
		Sessions: a.Sessions, Accounts: a.Accounts, TrustProxy: a.Config.TrustProxy,
		Registry: a.registry, OpenAPI: api.Spec, MaxBodyBytes: a.Config.MaxBodyBytes, AccessLog: a.Config.AccessLog,
		Wallet: a.Wallet, Idempotency: a.Idempotency,
		Users: a.UserService, Files: a.Files, Gamification: a.Gamification,
		UserStore: a.Users, Streaks: a.Streaks, MiniGames: a.MiniGames,
		Badges: a.Badges,
		Redeem: a.Redeem, Channels: a.Channels, Messages: a.Messages,
		Leaderboards: a.Leaderboards, Referrals: a.Referrals, Milestones: a.Milestones, Realtime: a.Realtime,
	})
	return nil
}

// Handler is the HTTP API.
func (a *App) Handler() http.Handler { return a.handler }

// Close releases the database.
func (a *App) Close() error { return a.DB.Close() }

// EnsureAdminKey creates the platform-admin key on first start and hands
// its secret out once: to AdminKeyFile when configured, else to stdout.
func (a *App) EnsureAdminKey(ctx context.Context) error {
	secret, created, err := a.Keys.EnsurePlatformKey(ctx)
	if err != nil || !created {
		return err
	}
	if a.Config.AdminKeyFile != "" {
		if err := os.WriteFile(a.Config.AdminKeyFile, []byte(secret+"\n"), 0o600); err != nil {
			return fmt.Errorf("write admin key file: %w", err)
		}
		a.Log.Info("platform-admin key created", "file", a.Config.AdminKeyFile)
		return nil
	}
	if _, err := fmt.Fprintf(a.stdout, "Platform-admin key (shown once; use it to create communities):\n%s\n", secret); err != nil {
		return fmt.Errorf("print admin key: %w", err)
	}
	return nil
}

// Serve runs the HTTP server and the background workers until ctx ends, then
// shuts down: stop accepting, let in-flight requests finish (bounded by
// ShutdownTimeout), close live-stream connections, stop the workers.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	if err := a.EnsureAdminKey(ctx); err != nil {
		return err
	}
	if err := a.Queue.Start(ctx); err != nil {
		return err
	}
	if err := a.Realtime.Start(ctx); err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.Log.Info("rally serving", "addr", ln.Addr().String(), "database", string(a.DB.Dialect))
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.Log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.Config.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("http shutdown: %w", err))
	}
	// WebSockets were hijacked from the HTTP server, which does not wait
	// for them: the hub closes them with 1001 (going away).
	if err := a.Realtime.Stop(shutCtx); err != nil {
		serveErr = errors.Join(serveErr, err)
	}
	if err := a.Queue.Stop(shutCtx); err != nil {
		serveErr = errors.Join(serveErr, err)
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}
