// Package config holds Rally's settings: one struct filled from flags, with
// RALLY_* environment variables as the flags' defaults, and defaults that
// work on a fresh machine.
package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Config is every setting the server reads.
type Config struct {
	// Addr is the listen address (RALLY_ADDR).
	Addr string
	// DataDir holds the embedded database (RALLY_DATA); uploaded files live in
	// the database, and a files folder left by older versions is imported.
	DataDir string
	// DSN chooses the database (RALLY_DB): sqlite:///path/file.db or
	// postgres://...; empty means SQLite at DataDir/rally.db.
	DSN string
	// Migrate lets serve upgrade an existing database's schema itself
	// (RALLY_MIGRATE); without it serve refuses an older schema.
	Migrate bool
	// AdminKeyFile, when set, receives the platform-admin key created on
	// first start instead of stdout (RALLY_ADMIN_KEY_FILE).
	AdminKeyFile string
	// LogLevel is debug, info, warn or error (RALLY_LOG_LEVEL).
	LogLevel string
	// AccessLog writes one log line per request (RALLY_ACCESS_LOG).
	AccessLog bool
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
	// MaxBodyBytes bounds request bodies (RALLY_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// SMTPURL sends mail (verification codes) through an SMTP server
	// (RALLY_SMTP_URL): smtp://user:pass@host:port?from=addr, STARTTLS when
	// offered, or smtps:// for TLS from the start. Empty: messages are
	// logged and kept in the mail_outbox table.
	SMTPURL string
	// TrustProxy takes the client address for login rate limits from the
	// first X-Forwarded-For entry (RALLY_TRUST_PROXY); set it only behind a
	// proxy that overwrites that header.
	TrustProxy bool
	// RealtimePing is how often live-stream connections are pinged; one
	// that does not answer within it is closed (RALLY_REALTIME_PING,
	// default 30s).
	RealtimePing time.Duration
	// RealtimeBuffer is how many frames may wait for a slow live-stream
	// client before it is dropped (RALLY_REALTIME_BUFFER, default 256).
	RealtimeBuffer int
	// RealtimePermissionTTL bounds how long a live-stream connection reuses
	// a read-permission answer when no permission change was recorded
	// (RALLY_REALTIME_PERMISSION_TTL, default 1s).
	RealtimePermissionTTL time.Duration
}

// Default is the configuration with no flags and no environment.
func Default() Config {
	return Config{
		Addr: "127.0.0.1:8080", DataDir: "./rally-data", LogLevel: "info", AccessLog: true,
		ShutdownTimeout: 15 * time.Second, MaxBodyBytes: 1 << 20,
	}
}

// FromEnv returns Default overlaid with the RALLY_* environment variables.
func FromEnv() (Config, error) {
	c := Default()
	str := func(name string, dst *string) {
		if v, ok := os.LookupEnv(name); ok {
			*dst = v
		}
	}
	str("RALLY_ADDR", &c.Addr)
	str("RALLY_DATA", &c.DataDir)
	str("RALLY_DB", &c.DSN)
	str("RALLY_ADMIN_KEY_FILE", &c.AdminKeyFile)
	str("RALLY_LOG_LEVEL", &c.LogLevel)
	str("RALLY_SMTP_URL", &c.SMTPURL)
	for name, dst := range map[string]*bool{"RALLY_MIGRATE": &c.Migrate, "RALLY_ACCESS_LOG": &c.AccessLog, "RALLY_TRUST_PROXY": &c.TrustProxy} {
		if v, ok := os.LookupEnv(name); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			*dst = b
		}
	}
	if v, ok := os.LookupEnv("RALLY_MAX_BODY_BYTES"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("RALLY_MAX_BODY_BYTES: want a positive integer, got %q", v)
		}
		c.MaxBodyBytes = n
	}
	if v, ok := os.LookupEnv("RALLY_REALTIME_PING"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("RALLY_REALTIME_PING: want a positive duration such as 30s, got %q", v)
		}
		c.RealtimePing = d
	}
	if v, ok := os.LookupEnv("RALLY_REALTIME_PERMISSION_TTL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("RALLY_REALTIME_PERMISSION_TTL: want a positive duration such as 1s, got %q", v)
		}
		c.RealtimePermissionTTL = d
	}
	if v, ok := os.LookupEnv("RALLY_REALTIME_BUFFER"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("RALLY_REALTIME_BUFFER: want a positive integer, got %q", v)
		}
		c.RealtimeBuffer = n
	}
	return c, nil
}

// DatabaseFlags registers the flags that choose the database.
func (c *Config) DatabaseFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory for the embedded database and files (RALLY_DATA)")
	fs.StringVar(&c.DSN, "db", c.DSN, "database DSN: sqlite:///path/file.db or postgres://... (RALLY_DB; default: SQLite in the data directory)")
}

// ServeFlags registers the flags of the serve command.
func (c *Config) ServeFlags(fs *flag.FlagSet) {
	c.DatabaseFlags(fs)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (RALLY_ADDR)")
	fs.BoolVar(&c.Migrate, "migrate", c.Migrate, "upgrade an older database schema before serving (RALLY_MIGRATE)")
	fs.StringVar(&c.AdminKeyFile, "admin-key-file", c.AdminKeyFile, "write the platform-admin key created on first start to this file instead of stdout (RALLY_ADMIN_KEY_FILE)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (RALLY_LOG_LEVEL)")
	fs.BoolVar(&c.AccessLog, "access-log", c.AccessLog, "log one line per request (RALLY_ACCESS_LOG)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight requests may finish on shutdown")
	fs.StringVar(&c.SMTPURL, "smtp-url", c.SMTPURL, "send mail through smtp://user:pass@host:port?from=addr (RALLY_SMTP_URL; default: log it and keep it in mail_outbox)")
	fs.BoolVar(&c.TrustProxy, "trust-proxy", c.TrustProxy, "take the client address from X-Forwarded-For (RALLY_TRUST_PROXY)")
}

// DatabaseDSN is the DSN to open: DSN, or SQLite inside DataDir.
func (c Config) DatabaseDSN() string {
	if c.DSN != "" {
		return c.DSN
	}
	abs, err := filepath.Abs(filepath.Join(c.DataDir, "rally.db"))
	if err != nil {
		abs = filepath.Join(c.DataDir, "rally.db")
	}
	return "sqlite://" + abs
}
