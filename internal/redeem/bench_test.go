package redeem_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/redeem"
	"github.com/rallyhq/rally/internal/store"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/wallet"
)

// BenchmarkPurchase measures purchases per second through the service:
// every goroutine buying the same product (contention on its stock row) or
// each buying among 64 products; buyers are spread over 64 funded members
// in both modes.
func BenchmarkPurchase(b *testing.B) {
	for _, mode := range []string{"one-product", "many-products"} {
		b.Run(mode, func(b *testing.B) {
			e := apitest.New(b)
			ctx := context.Background()
			c, _ := e.Community("Bench", "bench")
			b.SetParallelism(4)
			buyers := make([]redeem.Buyer, 64)
			for i := range buyers {
				u := e.Member(c, fmt.Sprintf("m%d", i), user.MemberOptions{Joined: true})
				if _, err := e.App.Wallet.Credit(ctx, wallet.Entry{CommunityID: c, UserID: u.ID, Currency: wallet.Coins, Amount: wallet.MaxAmount,
					Reason: wallet.ReasonCredit, Actor: wallet.Actor{Kind: wallet.ActorSystem}}); err != nil {
					b.Fatal(err)
				}
				var err error
				if buyers[i], err = e.App.Redeem.Buyer(ctx, c, u.ID, user.ByObjectID); err != nil {
					b.Fatal(err)
				}
			}
			products := make([]string, 64)
			for i := range products {
				p, err := e.App.Store.CreateProduct(ctx, c, store.ProductInput{Name: jsonx.Some(fmt.Sprintf("P%d", i)),
					Price: jsonx.Some(int64(1)), Stocks: jsonx.Some(int64(1_000_000_000))})
				if err != nil {
					b.Fatal(err)
				}
				products[i] = p.ID
			}
			var next atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := int(next.Add(1))
					product := products[0]
					if mode == "many-products" {
						product = products[n%len(products)]
					}
					req := redeem.PurchaseRequest{CommunityID: c, ProductID: product, Buyer: buyers[n%len(buyers)], Quantity: 1,
						Actor: wallet.Actor{Kind: wallet.ActorSystem}}
					if err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
						_, err := e.App.Redeem.PurchaseTx(ctx, tx, req)
						return err
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "purchases/s")
		})
	}
}
