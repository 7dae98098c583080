package redeem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/app"
	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/community"
	"github.com/rallyhq/rally/internal/config"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/store"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
)

// Crash scenario sizes.
const (
	crashMembers  = 8
	crashBalance  = 1_000_000
	crashStock    = 1_000_000
	crashVouchers = 3000
	crashWorkers  = 16
	crashLoad     = 1500 * time.Millisecond
)

// seeded is what the crash test set up before starting the server.
type seeded struct {
	key             string
	community       string
	members         []string
	item, voucherID string
}

// seed creates a community, funded members and two products (one with a
// stock, one with voucher codes) in the data directory, through the
// services, and closes the database.
func seed(t *testing.T, dsn string) seeded {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.DSN = dsn
	cfg.DataDir = filepath.Dir(dsn[len("sqlite://"):])
	a, err := app.Open(ctx, cfg, nil, app.Options{Clock: clock.System{}, Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c, _, secret, err := a.Communities.Create(ctx, community.Input{Name: jsonx.Some("Crash"), URI: jsonx.Some("crash")})
	if err != nil {
		t.Fatal(err)
	}
	s := seeded{key: secret, community: c.ID}
	for i := range crashMembers {
		var u user.User
		err := a.DB.Tx(ctx, func(tx *db.Tx) error {
			var err error
			name := fmt.Sprintf("crash%d", i)
			if u, err = a.Users.CreateAccountTx(ctx, tx, user.NewAccount{Email: name + "@example.com", Username: name}); err != nil {
				return err
			}
			_, err = a.Users.AddMemberTx(ctx, tx, c.ID, u, user.MemberOptions{Joined: true})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Wallet.Credit(ctx, wallet.Entry{CommunityID: c.ID, UserID: u.ID, Currency: wallet.Coins, Amount: crashBalance,
			Reason: wallet.ReasonCredit, Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
			t.Fatal(err)
		}
		s.members = append(s.members, u.ID)
	}
	item, err := a.Store.CreateProduct(ctx, c.ID, store.ProductInput{Name: jsonx.Some("Item"), Price: jsonx.Some(int64(3)),
		Stocks: jsonx.Some(int64(crashStock))})
	if err != nil {
		t.Fatal(err)
	}
	codes := make([]string, crashVouchers)
	for i := range codes {
		codes[i] = fmt.Sprintf("CRASH-%05d", i)
	}
	v, err := a.Store.CreateProduct(ctx, c.ID, store.ProductInput{Name: jsonx.Some("Voucher"), Price: jsonx.Some(int64(5)),
		Vouchers: jsonx.Some(codes), VoucherExpireDate: jsonx.Some(time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339))})
	if err != nil {
		t.Fatal(err)
	}
	s.item, s.voucherID = item.ID, v.ID
	return s
}

// server is a running rally serve process.
type server struct {
	cmd  *exec.Cmd
	base string
}

// start runs the binary on the database and waits until it answers.
func start(t *testing.T, bin, dsn, dir string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve", "--db", dsn, "--data", dir, "--addr", addr, "--admin-key-file", filepath.Join(dir, "admin.key"),
		"--log-level", "error", "--access-log=false")
	cmd.Env = append(os.Environ(), "RALLY_DB=", "RALLY_DATA=")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, base: "http://" + addr}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(s.base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("server did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// purchase buys one unit and returns the status and order id.
func (s *server) purchase(client *http.Client, key, product, member string) (int, string, error) {
	body, _ := json.Marshal(map[string]any{"user": member, "identifier_type": "_id"})
	req, err := http.NewRequest("POST", s.base+"/v1/products/"+product+"/purchase", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	var out struct {
		Data struct {
			OrderID string `json:"orderID"`
		} `json:"data"`
	}
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out.Data.OrderID, nil
}

// TestCrashKeepsBooks kills the server with SIGKILL in the middle of a
// purchase load, restarts it, and checks that every acknowledged purchase
// survived and that no purchase was half applied.
func TestCrashKeepsBooks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "rally")
	build := exec.Command("go", "build", "-o", bin, "github.com/rallyhq/rally/cmd/rally")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dsn := "sqlite://" + filepath.Join(dir, "data", "rally.db")
	sd := seed(t, dsn)

	srv := start(t, bin, dsn, dir)
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				product := sd.item
				if (w+i)%2 == 1 {
					product = sd.voucherID
				}
				status, order, err := srv.purchase(client, sd.key, product, sd.members[(w+i)%crashMembers])
				if err != nil {
					return // the server died
				}
				if status == http.StatusCreated {
					mu.Lock()
					acked = append(acked, order)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(crashLoad)
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no purchase was acknowledged before the kill")
	}

	// The restarted server serves purchases again.
	srv = start(t, bin, dsn, dir)
	if status, _, err := srv.purchase(client, sd.key, sd.item, sd.members[0]); err != nil || status != http.StatusCreated {
		t.Fatalf("purchase after restart: %d %v", status, err)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = srv.cmd.Wait()

	checkCrashBooks(t, dsn, sd, acked)
}

// checkCrashBooks verifies the books after the crash.
func checkCrashBooks(t *testing.T, dsn string, sd seeded, acked []string) {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	one := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := d.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	for _, o := range acked {
		if one("SELECT COUNT(*) FROM redemption_orders WHERE order_no = ?", o) != 1 {
			t.Fatalf("acknowledged order %s was lost", o)
		}
	}
	orders := one("SELECT COUNT(*) FROM redemption_orders WHERE community_id = ?", sd.community)
	if orders < int64(len(acked))+1 {
		t.Fatalf("%d orders, %d acknowledged", orders, len(acked))
	}
	for _, m := range sd.members {
		balance := one("SELECT balance FROM wallet_balances WHERE user_id = ? AND currency = 'coins'", m)
		sum := one("SELECT SUM(amount) FROM wallet_ledger WHERE user_id = ? AND currency = 'coins'", m)
		debits := one("SELECT COALESCE(-SUM(amount), 0) FROM wallet_ledger WHERE user_id = ? AND reason = 'purchase'", m)
		debitRows := one("SELECT COUNT(*) FROM wallet_ledger WHERE user_id = ? AND reason = 'purchase'", m)
		paid := one("SELECT COALESCE(SUM(total_price), 0) FROM redemption_orders WHERE user_id = ?", m)
		bought := one("SELECT COUNT(*) FROM redemption_orders WHERE user_id = ?", m)
		unmatched := one(`SELECT COUNT(*) FROM redemption_orders o WHERE o.user_id = ? AND NOT EXISTS
			(SELECT 1 FROM wallet_ledger l WHERE l.user_id = o.user_id AND l.reason = 'purchase' AND l.reference = o.order_no AND l.amount = -o.total_price)`, m)
		if sum != balance || balance != crashBalance-debits || debits != paid || debitRows != bought || unmatched != 0 {
			t.Fatalf("member %s: balance %d, ledger %d, debits %d in %d rows, orders %d paying %d, %d orders without their debit",
				m, balance, sum, debits, debitRows, bought, paid, unmatched)
		}
	}
	for _, p := range []struct {
		id      string
		voucher bool
	}{{sd.item, false}, {sd.voucherID, true}} {
		sold := one("SELECT COALESCE(SUM(quantity), 0) FROM redemption_orders WHERE product_id = ?", p.id)
		n := one("SELECT COUNT(*) FROM redemption_orders WHERE product_id = ?", p.id)
		if total := one("SELECT total_orders FROM store_products WHERE id = ?", p.id); total != n {
			t.Fatalf("product %s: total_orders %d, orders %d", p.id, total, n)
		}
		if p.voucher {
			assigned := one("SELECT COUNT(*) FROM store_vouchers WHERE product_id = ? AND order_id IS NOT NULL", p.id)
			orphans := one(`SELECT COUNT(*) FROM store_vouchers v WHERE v.product_id = ? AND v.order_id IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM redemption_orders o WHERE o.id = v.order_id)`, p.id)
			if assigned != sold || orphans != 0 {
				t.Fatalf("vouchers: %d assigned, %d sold, %d assigned to no order", assigned, sold, orphans)
			}
			continue
		}
		if left := one("SELECT stock FROM store_products WHERE id = ?", p.id); left+sold != crashStock {
			t.Fatalf("stock %d + sold %d != %d", left, sold, crashStock)
		}
	}
	if h := one("SELECT COUNT(*) FROM redemption_status_history WHERE community_id = ?", sd.community); h != orders {
		t.Fatalf("%d history rows for %d orders", h, orders)
	}
	if ev := one("SELECT COUNT(*) FROM events WHERE community_id = ? AND type = 'store.item.purchased'", sd.community); ev != orders {
		t.Fatalf("%d purchase events for %d orders", ev, orders)
	}
	t.Logf("%d orders (%d acknowledged before SIGKILL)", orders, len(acked))
}
