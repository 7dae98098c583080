package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/store"
)

func voucherProduct(t *testing.T, e *apitest.Env, community string, codes int) store.Product {
	t.Helper()
	list := make([]string, codes)
	for i := range list {
		list[i] = fmt.Sprintf("CODE-%03d", i)
	}
	p, err := e.App.Store.CreateProduct(context.Background(), community, store.ProductInput{
		Name: jsonx.Some("Gift card"), Price: jsonx.Some(int64(10)), Vouchers: jsonx.Some(list),
		VoucherExpireDate: jsonx.Some(e.Clock.Now().Add(24 * time.Hour).Format(time.RFC3339)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Fifty buyers race for thirty codes: thirty distinct codes go out, twenty
// buyers hear the product is out of vouchers, no code goes out twice.
func TestAssignVoucherConcurrently(t *testing.T) {
	e := apitest.New(t)
	a, _ := e.Community("Alpha", "alpha")
	b, _ := e.Community("Beta", "beta")
	p := voucherProduct(t, e, a, 30)
	ctx := context.Background()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[string]string{}
		out   int
		other []error
	)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			order := fmt.Sprintf("ORD%04d", i)
			var code string
			err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
				var err error
				code, err = e.App.Store.AssignVoucherTx(ctx, tx, a, p.ID, order)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				if prev, dup := codes[code]; dup {
					other = append(other, fmt.Errorf("code %s handed to %s and %s", code, prev, order))
				}
				codes[code] = order
			case errors.Is(err, store.ErrOutOfVouchers) && errs.KindOf(err) == errs.Conflict:
				out++
			default:
				other = append(other, err)
			}
		}(i)
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("unexpected: %v", other)
	}
	if len(codes) != 30 || out != 20 {
		t.Fatalf("%d codes handed out, %d out-of-vouchers; want 30 and 20", len(codes), out)
	}
	var assigned, distinctOrders int
	if err := e.App.DB.QueryRow(ctx, "SELECT COUNT(*), COUNT(DISTINCT order_id) FROM store_vouchers WHERE product_id = ? AND order_id IS NOT NULL",
		p.ID).Scan(&assigned, &distinctOrders); err != nil {
		t.Fatal(err)
	}
	if assigned != 30 || distinctOrders != 30 {
		t.Fatalf("stored: %d assigned to %d orders", assigned, distinctOrders)
	}
	got, err := e.App.Store.Product(ctx, a, p.ID, store.Query{})
	if err != nil || got.Stocks == nil || *got.Stocks != 0 {
		t.Fatalf("stocks after: %+v %v", got.Stocks, err)
	}
	// Another community cannot take A's codes.
	err = e.App.DB.Tx(ctx, func(tx *db.Tx) error {
		_, err := e.App.Store.AssignVoucherTx(ctx, tx, b, p.ID, "ORD-B")
		return err
	})
	if errs.KindOf(err) != errs.NotFound {
		t.Fatalf("foreign community: %v", err)
	}
}

// Expired codes are never handed out; with shouldPrioritiesExpiringVouchers
// the code expiring soonest goes first.
func TestAssignVoucherExpiry(t *testing.T) {
	e := apitest.New(t)
	a, _ := e.Community("Alpha", "alpha")
	ctx := context.Background()
	p := voucherProduct(t, e, a, 1) // CODE-000, expires in a day
	now := e.Clock.Now()
	if _, err := e.App.Store.UpdateProduct(ctx, a, p.ID, store.ProductInput{
		ShouldPrioritiesExpiringVouchers: jsonx.Some(true),
		Vouchers:                         jsonx.Some([]string{"SOON"}), VoucherExpireDate: jsonx.Some(now.Add(time.Hour).Format(time.RFC3339)),
	}); err != nil {
		t.Fatal(err)
	}
	take := func(order string) (string, error) {
		var code string
		err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
			var err error
			code, err = e.App.Store.AssignVoucherTx(ctx, tx, a, p.ID, order)
			return err
		})
		return code, err
	}
	if code, err := take("ORD1"); err != nil || code != "SOON" {
		t.Fatalf("first code %q %v, want SOON", code, err)
	}
	e.Clock.Advance(48 * time.Hour)
	if _, err := take("ORD2"); !errors.Is(err, store.ErrOutOfVouchers) {
		t.Fatalf("expired code handed out: %v", err)
	}
}

// Two hundred orders race for a stock of fifty: exactly fifty get it.
func TestReserveStockConcurrently(t *testing.T) {
	e := apitest.New(t)
	a, _ := e.Community("Alpha", "alpha")
	ctx := context.Background()
	p, err := e.App.Store.CreateProduct(ctx, a, store.ProductInput{Name: jsonx.Some("Hoodie"), Price: jsonx.Some(int64(5)), Stocks: jsonx.Some(int64(50))})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, none int
		other    []error
	)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.App.DB.Tx(ctx, func(tx *db.Tx) error { return e.App.Store.ReserveStockTx(ctx, tx, a, p.ID, 1) })
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrOutOfStock):
				none++
			default:
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	if len(other) > 0 || ok != 50 || none != 150 {
		t.Fatalf("%d reserved, %d out of stock, other %v", ok, none, other)
	}
	got, err := e.App.Store.Product(ctx, a, p.ID, store.Query{})
	if err != nil || *got.Stocks != 0 || got.TotalOrders != 50 {
		t.Fatalf("after: stocks %v orders %d %v", got.Stocks, got.TotalOrders, err)
	}
	// A refund gives the units back once per call.
	if err := e.App.DB.Tx(ctx, func(tx *db.Tx) error { return e.App.Store.ReleaseStockTx(ctx, tx, a, p.ID, 3) }); err != nil {
		t.Fatal(err)
	}
	got, _ = e.App.Store.Product(ctx, a, p.ID, store.Query{})
	if *got.Stocks != 3 || got.TotalOrders != 49 {
		t.Fatalf("after release: stocks %v orders %d", *got.Stocks, got.TotalOrders)
	}
	// More than is left is refused whole.
	err = e.App.DB.Tx(ctx, func(tx *db.Tx) error { return e.App.Store.ReserveStockTx(ctx, tx, a, p.ID, 4) })
	if !errors.Is(err, store.ErrOutOfStock) {
		t.Fatalf("over-reserve: %v", err)
	}
	if err := e.App.DB.Tx(ctx, func(tx *db.Tx) error { return e.App.Store.ReserveStockTx(ctx, tx, a, p.ID, 0) }); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("zero quantity: %v", err)
	}
}

// Unlimited products always reserve; voucher products reserve while codes
// are left.
func TestReserveStockKinds(t *testing.T) {
	e := apitest.New(t)
	a, _ := e.Community("Alpha", "alpha")
	ctx := context.Background()
	u, err := e.App.Store.CreateProduct(ctx, a, store.ProductInput{Name: jsonx.Some("Badge"), Price: jsonx.Some(int64(1))})
	if err != nil {
		t.Fatal(err)
	}
	v := voucherProduct(t, e, a, 2)
	reserve := func(id string, qty int) error {
		return e.App.DB.Tx(ctx, func(tx *db.Tx) error { return e.App.Store.ReserveStockTx(ctx, tx, a, id, qty) })
	}
	for i := 0; i < 5; i++ {
		if err := reserve(u.ID, 1000); err != nil {
			t.Fatalf("unlimited: %v", err)
		}
	}
	if err := reserve(v.ID, 3); !errors.Is(err, store.ErrOutOfStock) {
		t.Fatalf("voucher product over its codes: %v", err)
	}
	if err := reserve(v.ID, 2); err != nil {
		t.Fatalf("voucher product: %v", err)
	}
	if err := reserve("650906d314a3e564c56f3459", 1); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("unknown product: %v", err)
	}
}
