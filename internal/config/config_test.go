package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var envNames = []string{
	"RALLY_ADDR", "RALLY_DATA", "RALLY_DB", "RALLY_MIGRATE", "RALLY_ADMIN_KEY_FILE",
	"RALLY_LOG_LEVEL", "RALLY_ACCESS_LOG", "RALLY_MAX_BODY_BYTES",
}

// clearEnv unsets every RALLY_* setting for the test (restored afterwards).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, n := range envNames {
		t.Setenv(n, "")
		if err := os.Unsetenv(n); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFromEnvDefaults(t *testing.T) {
	clearEnv(t)
	c, err := FromEnv()
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	if c != Default() {
		t.Fatalf("FromEnv with no environment = %+v, want Default() %+v", c, Default())
	}
	want := Config{Addr: "127.0.0.1:8080", DataDir: "./rally-data", LogLevel: "info", AccessLog: true,
		ShutdownTimeout: 15 * time.Second, MaxBodyBytes: 1 << 20}
	if c != want {
		t.Fatalf("Default() = %+v, want %+v", c, want)
	}
}

func TestFromEnvReadsEverySetting(t *testing.T) {
	clearEnv(t)
	t.Setenv("RALLY_ADDR", "0.0.0.0:9999")
	t.Setenv("RALLY_DATA", "/srv/rally")
	t.Setenv("RALLY_DB", "postgres://u@h/db")
	t.Setenv("RALLY_MIGRATE", "true")
	t.Setenv("RALLY_ADMIN_KEY_FILE", "/run/admin.key")
	t.Setenv("RALLY_LOG_LEVEL", "debug")
	t.Setenv("RALLY_ACCESS_LOG", "0")
	t.Setenv("RALLY_MAX_BODY_BYTES", "4096")
	c, err := FromEnv()
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	want := Default()
	want.Addr, want.DataDir, want.DSN = "0.0.0.0:9999", "/srv/rally", "postgres://u@h/db"
	want.Migrate, want.AdminKeyFile, want.LogLevel = true, "/run/admin.key", "debug"
	want.AccessLog, want.MaxBodyBytes = false, 4096
	if c != want {
		t.Fatalf("FromEnv = %+v\nwant      %+v", c, want)
	}
}

func TestFromEnvRejectsBadValues(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"RALLY_MIGRATE", "yes please"},
		{"RALLY_ACCESS_LOG", "maybe"},
		{"RALLY_MAX_BODY_BYTES", "lots"},
		{"RALLY_MAX_BODY_BYTES", "0"},
		{"RALLY_MAX_BODY_BYTES", "-1"},
		{"RALLY_MAX_BODY_BYTES", "1.5"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			clearEnv(t)
			t.Setenv(tc.name, tc.value)
			_, err := FromEnv()
			if err == nil {
				t.Fatalf("FromEnv accepted %s=%q", tc.name, tc.value)
			}
			if !strings.Contains(err.Error(), tc.name) {
				t.Fatalf("error %q does not name %s", err, tc.name)
			}
		})
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	clearEnv(t)
	t.Setenv("RALLY_ADDR", "127.0.0.1:1111")
	t.Setenv("RALLY_MIGRATE", "false")
	c, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.ServeFlags(fs)
	if err := fs.Parse([]string{"--addr", "127.0.0.1:2222", "--migrate", "--db", "sqlite:///tmp/x.db",
		"--admin-key-file", "k", "--log-level", "warn", "--access-log=false", "--shutdown-timeout", "3s"}); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:2222" || !c.Migrate || c.DSN != "sqlite:///tmp/x.db" || c.AdminKeyFile != "k" ||
		c.LogLevel != "warn" || c.AccessLog || c.ShutdownTimeout != 3*time.Second {
		t.Fatalf("flags not applied: %+v", c)
	}

	// Without flags, the environment stays the default.
	c2, _ := FromEnv()
	fs2 := flag.NewFlagSet("serve", flag.ContinueOnError)
	c2.ServeFlags(fs2)
	if err := fs2.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if c2.Addr != "127.0.0.1:1111" {
		t.Fatalf("Addr = %q, want the environment's 127.0.0.1:1111", c2.Addr)
	}
}

func TestDatabaseDSN(t *testing.T) {
	c := Default()
	got := c.DatabaseDSN()
	path, ok := strings.CutPrefix(got, "sqlite://")
	if !ok {
		t.Fatalf("default DSN %q is not sqlite://", got)
	}
	if !filepath.IsAbs(path) {
		t.Fatalf("default DSN path %q is not absolute", path)
	}
	if want := filepath.Join("rally-data", "rally.db"); !strings.HasSuffix(path, string(filepath.Separator)+want) {
		t.Fatalf("default DSN path %q does not end in %s", path, want)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(wd, "rally-data", "rally.db"); path != want {
		t.Fatalf("default DSN path = %q, want %q", path, want)
	}

	c.DataDir = "/var/lib/rally"
	if got, want := c.DatabaseDSN(), "sqlite:///var/lib/rally/rally.db"; got != want {
		t.Fatalf("DatabaseDSN with DataDir = %q, want %q", got, want)
	}
	c.DSN = "postgres://u@h:5432/db"
	if got := c.DatabaseDSN(); got != c.DSN {
		t.Fatalf("DatabaseDSN with DSN set = %q, want %q", got, c.DSN)
	}
}
