package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
)

// MaxBulkProducts is the most products one bulk request may create or
// update.
const MaxBulkProducts = 100

// BulkItem is one product of a bulk request. Label names it in errors:
// "[2]" for the third element of a JSON array, "row 5" for a CSV line.
type BulkItem struct {
	Label string
	// ProductID is the product to change (bulk update only).
	ProductID string
	Input     ProductInput
	// Errs are what parsing found wrong with this product, fields fully
	// named; such a product is reported, not saved.
	Errs []errs.FieldError
}

// addErr records a parse error of the item.
func (it *BulkItem) addErr(field, format string, args ...any) {
	it.Errs = append(it.Errs, errs.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// prefixed copies err's field errors into v under label; other errors are
// returned unchanged.
func prefixed(v *errs.Validator, label string, err error) error {
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Invalid {
		return err
	}
	for _, f := range e.Fields {
		v.Add(label+"."+f.Field, "%s", f.Message)
	}
	return nil
}

// ParseProductsJSON reads a bulk body: a raw JSON array of product objects
// (with productID each when update). Every malformed element is named.
func ParseProductsJSON(raw []byte, update bool) ([]BulkItem, error) {
	var v errs.Validator
	raw = bytes.TrimSpace(raw)
	var elems []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
		v.Add("body", "must be a JSON array of product objects (not wrapped in an object)")
		return nil, v.Err()
	}
	items := make([]BulkItem, 0, len(elems))
	for i, el := range elems {
		it := BulkItem{Label: fmt.Sprintf("[%d]", i)}
		var in ProductUpdate
		if err := json.Unmarshal(el, &in); err != nil {
			var ute *json.UnmarshalTypeError
			if errors.As(err, &ute) && ute.Field != "" {
				it.addErr(it.Label+"."+strings.TrimPrefix(ute.Field, "ProductInput."), "has the wrong type (%s where %s is expected)", ute.Value, ute.Type)
			} else {
				it.addErr(it.Label, "must be a product object")
			}
		}
		it.ProductID, it.Input = in.ProductID, in.ProductInput
		items = append(items, it)
	}
	checkBulk(&v, items, update)
	if err := v.Err(); err != nil {
		return nil, err
	}
	return items, nil
}

// checkBulk checks the batch size and, for updates, every productID.
func checkBulk(v *errs.Validator, items []BulkItem, update bool) {
	if len(items) == 0 {
		v.Add("body", "must hold at least one product")
	}
	v.Check(len(items) <= MaxBulkProducts, "body", "must hold at most %d products", MaxBulkProducts)
	if !update {
		return
	}
	for i := range items {
		if !id.Valid(items[i].ProductID) {
			items[i].addErr(items[i].Label+".productID", "is required and must be a 24-hex ObjectId")
		}
	}
}

// CreateProducts creates every product of items in one transaction: all or
// nothing. A 400 names every offending field of every product
// ("[2].price", "row 5.price"); duplicate voucher codes give a 409 naming
// the products.
func (s *Service) CreateProducts(ctx context.Context, communityID string, items []BulkItem) ([]Product, error) {
	return s.bulk(ctx, communityID, items, func(tx *db.Tx, it BulkItem) (Product, error) {
		return s.saveProduct(ctx, tx, communityID, newProduct(communityID, s.d.Clock.Now()), it.Input, true)
	})
}

// UpdateProducts applies partial updates to the products named in items in
// one transaction: all or nothing, with the errors named per product as in
// CreateProducts. An id that names no product of the community is a 400
// on that entry's productID.
func (s *Service) UpdateProducts(ctx context.Context, communityID string, items []BulkItem) ([]Product, error) {
	return s.bulk(ctx, communityID, items, func(tx *db.Tx, it BulkItem) (Product, error) {
		cur, err := s.readProductTx(ctx, tx, communityID, it.ProductID)
		if errs.KindOf(err) == errs.NotFound {
			var v errs.Validator
			v.Add("productID", "names no product of this community")
			return Product{}, v.Err()
		}
		if err != nil {
			return Product{}, err
		}
		return s.saveProduct(ctx, tx, communityID, cur, it.Input, false)
	})
}

// bulk runs one save per item in a transaction, collecting every item's
// errors before deciding: invalid input wins (400), then conflicts (409).
func (s *Service) bulk(ctx context.Context, communityID string, items []BulkItem, save func(*db.Tx, BulkItem) (Product, error)) ([]Product, error) {
	var out []Product
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		out = make([]Product, 0, len(items))
		var (
			v         errs.Validator
			conflicts []string
		)
		for _, it := range items {
			if len(it.Errs) > 0 {
				for _, f := range it.Errs {
					v.Add(f.Field, "%s", f.Message)
				}
				continue
			}
			p, err := save(tx, it)
			if err == nil {
				out = append(out, p)
				continue
			}
			if err = prefixed(&v, it.Label, err); err == nil {
				continue
			}
			if errs.KindOf(err) != errs.Conflict {
				return fmt.Errorf("%s: %w", it.Label, err)
			}
			var e *errs.Error
			errors.As(err, &e)
			conflicts = append(conflicts, it.Label+": "+e.Message)
		}
		if err := v.Err(); err != nil {
			return err
		}
		if len(conflicts) > 0 {
			return errs.Conflictf("%s", strings.Join(conflicts, " "))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
