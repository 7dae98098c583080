package redeem_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/user"
)

// Contention scenario: 200 purchases at once of a product with 50 units,
// by 10 members whose balances cover 30 purchases each.
const (
	contendRequests = 200
	contendStock    = 50
	contendMembers  = 10
	contendPrice    = 10
	contendBalance  = 30 * contendPrice
)

// answer is one purchase answer: its status and order id.
type answer struct {
	status int
	order  string
}

// TestPurchaseContention runs the scenario on a product with a stock, and
// on a voucher product with every request sent twice at once under one
// Idempotency-Key.
func TestPurchaseContention(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name              string
		vouchers, retries bool
	}{
		{"stock", false, false},
		{"vouchers retried", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := apitest.New(t)
			community, key := e.Community("Rush", "rush")
			members := make([]user.User, contendMembers)
			for i := range members {
				members[i] = e.Member(community, fmt.Sprintf("buyer%d", i), user.MemberOptions{Joined: true})
				fund(t, e, community, members[i], contendBalance)
			}
			body := map[string]any{"name": "Hot item", "price": contendPrice, "stocks": contendStock}
			if c.vouchers {
				codes := make([]string, contendStock)
				for i := range codes {
					codes[i] = fmt.Sprintf("RUSH-%03d", i)
				}
				body = map[string]any{"name": "Hot voucher", "price": contendPrice, "vouchers": codes,
					"voucherExpireDate": newShopExpiry(e)}
			}
			prod := newProduct(t, e, key, body)

			copies := 1
			if c.retries {
				copies = 2
			}
			answers := make([][]answer, contendRequests)
			var wg sync.WaitGroup
			for i := range contendRequests {
				answers[i] = make([]answer, copies)
				for j := range copies {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var h map[string]string
						if c.retries {
							h = map[string]string{"Idempotency-Key": fmt.Sprintf("rush-%d", i)}
						}
						res := buy(e, key, prod, map[string]any{"user": members[i%contendMembers].ID}, h)
						answers[i][j] = answer{res.Status, res.String("data.orderID")}
					}()
				}
			}
			wg.Wait()

			orders := map[string]bool{}
			for i, copies := range answers {
				for _, a := range copies {
					if a != copies[0] {
						t.Fatalf("request %d: retries answered differently: %v", i, copies)
					}
					switch a.status {
					case 201:
						orders[a.order] = true
					case 409:
					default:
						t.Fatalf("request %d: status %d", i, a.status)
					}
				}
			}
			if len(orders) != contendStock {
				t.Fatalf("%d orders, want %d", len(orders), contendStock)
			}
			checkBooks(t, e, community, prod, members, c.vouchers)
		})
	}
}

// newShopExpiry is a voucher expiry 90 days ahead of the test clock.
func newShopExpiry(e *apitest.Env) string {
	return e.Clock.Now().AddDate(0, 0, 90).Format("2006-01-02T15:04:05Z07:00")
}

// checkBooks verifies that stock, vouchers, balances, ledgers and orders
// agree after the contention run.
func checkBooks(t *testing.T, e *apitest.Env, community, prod string, members []user.User, vouchers bool) {
	t.Helper()
	ctx := context.Background()
	one := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := e.App.DB.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	sold := one("SELECT COALESCE(SUM(quantity), 0) FROM redemption_orders WHERE product_id = ?", prod)
	if n := one("SELECT COUNT(*) FROM redemption_orders WHERE product_id = ?", prod); sold != contendStock || n != contendStock {
		t.Fatalf("%d orders of %d units, want %d", n, sold, contendStock)
	}
	if left := one("SELECT COALESCE(stock, -1) FROM store_products WHERE id = ?", prod); !vouchers && left != 0 {
		t.Fatalf("stock left %d", left)
	}
	if n := one("SELECT total_orders FROM store_products WHERE id = ?", prod); n != contendStock {
		t.Fatalf("total_orders %d", n)
	}
	if vouchers {
		assigned := one("SELECT COUNT(*) FROM store_vouchers WHERE product_id = ? AND order_id IS NOT NULL", prod)
		distinct := one("SELECT COUNT(DISTINCT order_id) FROM store_vouchers WHERE product_id = ? AND order_id IS NOT NULL", prod)
		matched := one(`SELECT COUNT(*) FROM store_vouchers v JOIN redemption_orders o ON o.id = v.order_id
			WHERE v.product_id = ? AND o.vouchers LIKE '%"' || v.code || '"%'`, prod)
		free := one("SELECT COUNT(*) FROM store_vouchers WHERE product_id = ? AND order_id IS NULL", prod)
		if assigned != contendStock || distinct != contendStock || matched != contendStock || free != 0 {
			t.Fatalf("vouchers: %d assigned to %d orders, %d matching their order, %d free", assigned, distinct, matched, free)
		}
	}
	var spent int64
	for _, m := range members {
		bought := one("SELECT COUNT(*) FROM redemption_orders WHERE user_id = ?", m.ID)
		debits := one("SELECT COALESCE(SUM(amount), 0) FROM wallet_ledger WHERE user_id = ? AND reason = 'purchase'", m.ID)
		rows := one("SELECT COUNT(*) FROM wallet_ledger WHERE user_id = ? AND reason = 'purchase'", m.ID)
		if balance := coins(t, e, community, m); balance != contendBalance-bought*contendPrice ||
			debits != -bought*contendPrice || rows != bought {
			t.Fatalf("%s: %d orders, balance %d, debits %d in %d rows", m.Username, bought, balance, debits, rows)
		}
		spent += bought * contendPrice
	}
	if spent != contendStock*contendPrice {
		t.Fatalf("spent %d", spent)
	}
	if n := one("SELECT COUNT(*) FROM redemption_status_history WHERE community_id = ?", community); n != contendStock {
		t.Fatalf("%d history rows", n)
	}
	if got := len(e.EventTypes(community, "store.item.purchased")); got != contendStock {
		t.Fatalf("%d purchase events", got)
	}
}

func TestConcurrentRefunds(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	e := s.e
	prod := newProduct(t, e, s.keyA, map[string]any{"name": "Chair", "price": 100, "stocks": 4})
	ord := buy(e, s.keyA, prod, map[string]any{"user": "ada", "quantity": 2}, nil).Expect(t, 201).String("data.orderID")
	cancelled := statusID(t, e, s.keyA, "Cancelled")
	var refunded, ok atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := setStatus(e, s.keyA, ord, cancelled)
			if res.Status == 200 {
				ok.Add(1)
			}
			if res.Get("data.refunded") == true {
				refunded.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 100 || refunded.Load() != 1 {
		t.Fatalf("%d answered 200, %d refunded", ok.Load(), refunded.Load())
	}
	if got := coins(t, e, s.a, s.ada); got != 1000 {
		t.Fatalf("balance %d", got)
	}
	if got := stock(t, e, s.keyA, prod); got != float64(4) {
		t.Fatalf("stock %v", got)
	}
	var refunds, history int
	ctx := context.Background()
	if err := e.App.DB.QueryRow(ctx, "SELECT COUNT(*) FROM wallet_ledger WHERE reason = 'refund'").Scan(&refunds); err != nil {
		t.Fatal(err)
	}
	if err := e.App.DB.QueryRow(ctx, "SELECT COUNT(*) FROM redemption_status_history").Scan(&history); err != nil {
		t.Fatal(err)
	}
	if refunds != 1 || history != 2 {
		t.Fatalf("%d refund rows, %d history rows", refunds, history)
	}
}
