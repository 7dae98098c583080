package store_test

import (
	"strings"
	"testing"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/store"
)

// FuzzParseProductsCSV feeds arbitrary uploads to the CSV parser: it must
// never panic, and what it accepts must be a well-formed batch.
func FuzzParseProductsCSV(f *testing.F) {
	for _, seed := range []string{
		"Name,Price\nMug,10\n",
		"\ufeffName,Price,Category Name,Vouchers,Voucher Expire Date,Permission Type,Roles\nCap,40,Hats,C-1|C-2,2030-01-01T00:00:00Z,role,VIP\n,,,,,tag,\n",
		"Product ID,Name,Price\n650906d314a3e564c56f3450,,5\n",
		"Name,Price,Archived\nA,ten,perhaps\n",
		"Name,\"Pri\nce\"\n\"unterminated,1\n",
		"",
		",,,\n,,,\n",
		"Name,Collect Name,Expiring Highlight Duration,Special Price,Combination Values\nX,yes,7,80,a;b\n",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, data string, update bool) {
		items, err := store.ParseProductsCSV(strings.NewReader(data), update)
		if err != nil {
			if errs.KindOf(err) != errs.Invalid {
				t.Fatalf("parse error of kind %v: %v", errs.KindOf(err), err)
			}
			return
		}
		if len(items) == 0 || len(items) > store.MaxBulkProducts {
			t.Fatalf("accepted %d products", len(items))
		}
		for _, it := range items {
			if it.Label == "" {
				t.Fatal("product without a label")
			}
			if !update && (!it.Input.Name.Set || strings.TrimSpace(it.Input.Name.Value) == "") && len(it.Errs) == 0 {
				t.Fatalf("product %s without a name", it.Label)
			}
		}
	})
}

func TestParseProductsCSVLines(t *testing.T) {
	items, err := store.ParseProductsCSV(strings.NewReader(
		"Name,Price,Roles,Tags,Permission Type\nCap,40,VIP|Gold,,role\n,,,Early,tag\nPoster,15,,,\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Label != "row 2" || items[1].Label != "row 4" {
		t.Fatalf("items %+v", items)
	}
	rules := items[0].Input.ProductPermission.Value
	if len(rules) != 2 || strings.Join(rules[0].Permission.RoleNames, ",") != "VIP,Gold" || rules[1].Permission.TagNames[0] != "Early" {
		t.Fatalf("rules %+v", rules)
	}
	if items[0].Input.Price.Value != 40 || items[1].Input.ProductPermission.Set {
		t.Fatalf("inputs %+v", items)
	}
	if _, err := store.ParseProductsCSV(strings.NewReader(",,\nA,1\n"), false); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("no Name column: %v", err)
	}
}
