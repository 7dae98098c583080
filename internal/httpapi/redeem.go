package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/redeem"
	"github.com/rallyhq/rally/internal/user"
)

// Permissions of the redemption routes (endpoints.md, Decisions 8): orders
// use purchase-history, statuses use store; buying uses store.
const (
	permOrders   = "purchase-history"
	permStatuses = "store"
)

// purchaseInput is the purchase body. A partner names the buyer in user
// (with identifier_type, default any form); a signed-in member buys for
// themselves and sends no user.
type purchaseInput struct {
	User            string                 `json:"user"`
	IdentifierType  string                 `json:"identifier_type"`
	Quantity        *int                   `json:"quantity"`
	UserInformation redeem.UserInformation `json:"userInformation"`
}

// statusChangeInput is RR1's documented body.
type statusChangeInput struct {
	TransactionID string `json:"transactionId"`
	StatusID      string `json:"statusId"`
}

// byEmailInput is RR2's body: the member's email and the page.
type byEmailInput struct {
	Email  string `json:"email"`
	Skip   *int   `json:"skip"`
	Limit  *int   `json:"limit"`
	Status string `json:"status"`
}

// pageS is a page of an integration-family list: the items under their
// name, with skip, limit and total beside them in data.
func pageS(name string, items any, skip, limit, total int) map[string]any {
	return map[string]any{name: items, "skip": skip, "limit": limit, "total": total}
}

// redeemRoutes serve purchases (designed), redemption statuses and orders
// (RR1-RR7) and the purchase-history update (PH1).
func (s *Server) redeemRoutes() {
	s.handle("POST /products/{productId}/purchase", famM, partner(permStatuses).orUser(), s.purchase)
	s.handle("GET /redemption-statuses", famS, partner(permStatuses), func(c *call) error {
		skip, limit, err := offsetPage(c.r)
		if err != nil {
			return err
		}
		list, total, err := s.Redeem.Statuses(c.r.Context(), c.key.CommunityID, skip, limit)
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Redemption statuses retrieved successfully", pageS("statuses", list, skip, limit, total))
	})
	s.handle("GET /redemption-statuses/{statusId}", famS, partner(permStatuses), func(c *call) error {
		st, err := s.Redeem.Status(c.r.Context(), c.key.CommunityID, c.r.PathValue("statusId"))
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Redemption status retrieved successfully", st)
	})
	s.handle("POST /redemption-statuses", famS, partner(permStatuses), func(c *call) error {
		var in redeem.StatusInput
		if err := c.decode(&in); err != nil {
			return err
		}
		st, err := s.Redeem.CreateStatus(c.r.Context(), c.key.CommunityID, in)
		if err != nil {
			return err
		}
		return c.ok(http.StatusCreated, "Redemption status created successfully", st)
	})
	s.handle("PUT /redemption-transactions/status", famS, partner(permOrders), s.changeStatus)
	s.handle("POST /redemption-transactions/by-email", famS, partner(permOrders), s.ordersByEmail)
	s.handle("GET /redemption-transactions", famS, partner(permOrders), s.orders)
	s.handle("GET /redemption-transactions/{transactionId}/status-history", famS, partner(permOrders), func(c *call) error {
		skip, limit, err := offsetPage(c.r)
		if err != nil {
			return err
		}
		list, total, err := s.Redeem.History(c.r.Context(), c.key.CommunityID, c.r.PathValue("transactionId"), skip, limit)
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Transaction status history retrieved successfully", pageS("history", list, skip, limit, total))
	})
	s.handle("PATCH /purchase-histories/{purchaseHistoryId}", famM, partner(permOrders), func(c *call) error {
		var in redeem.HistoryInput
		if err := c.decode(&in); err != nil {
			return err
		}
		o, err := s.Redeem.UpdateHistory(c.r.Context(), c.key.CommunityID, c.r.PathValue("purchaseHistoryId"), in)
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Update purchase history success.", o)
	})
}

// purchase buys a product for a member: a partner key names the member, a
// signed-in member buys for themselves in the product's community.
func (s *Server) purchase(c *call) error {
	ctx := c.r.Context()
	productID := strings.ToLower(c.r.PathValue("productId"))
	var in purchaseInput
	raw, err := c.decodeRaw(&in)
	if err != nil {
		return err
	}
	var v errs.Validator
	qty := 1
	if in.Quantity != nil {
		qty = *in.Quantity
	}
	redeem.CheckQuantity(&v, qty)
	kind, kindOK := identifierKinds[in.IdentifierType]
	if c.session != nil {
		v.Check(in.User == "" && in.IdentifierType == "", "user", "must be omitted: a signed-in member buys for themselves")
	} else {
		v.Check(strings.TrimSpace(in.User) != "", "user", "is required: the buyer's email, id, _id or username")
		v.Check(kindOK, "identifier_type", "must be email, id, _id or username")
	}
	if err := v.Err(); err != nil {
		return err
	}
	var (
		communityID string
		buyer       redeem.Buyer
	)
	if c.session != nil {
		if communityID, err = s.Redeem.ProductCommunity(ctx, productID); err != nil {
			return err
		}
		// Members of other communities cannot tell the product exists.
		if err := c.requireGrant(communityID); err != nil {
			if errs.KindOf(err) == errs.Forbidden {
				return errs.NotFoundf("Product not found.")
			}
			return err
		}
		// The request now acts in the product's community (idempotency
		// scope, tenancy).
		c.r.SetPathValue("communityId", communityID)
		buyer, err = s.Redeem.Buyer(ctx, communityID, c.session.UserID, user.ByObjectID)
	} else {
		communityID = c.key.CommunityID
		buyer, err = s.Redeem.Buyer(ctx, communityID, in.User, kind)
	}
	if err != nil {
		return err
	}
	req := redeem.PurchaseRequest{CommunityID: communityID, ProductID: productID, Buyer: buyer, Quantity: qty,
		UserInformation: in.UserInformation, Actor: redeem.Actor(c.actor())}
	return c.idempotent("/v1/products/"+productID+"/purchase", raw, func(tx *db.Tx) (int, string, any, error) {
		o, err := s.Redeem.PurchaseTx(ctx, tx, req)
		if err != nil {
			return 0, "", nil, err
		}
		return http.StatusCreated, "Purchase product success.", o, nil
	})
}

// changeStatus is RR1: move an order to a status.
func (s *Server) changeStatus(c *call) error {
	var in statusChangeInput
	if err := c.decode(&in); err != nil {
		return err
	}
	var v errs.Validator
	v.Check(redeem.ValidRef(in.TransactionID), "transactionId", "is required: the order's ORD… id or its _id")
	v.Check(id.Valid(strings.TrimSpace(in.StatusID)), "statusId", "is required: a 24-hex ObjectId")
	if err := v.Err(); err != nil {
		return err
	}
	out, err := s.Redeem.ChangeStatus(c.r.Context(), c.key.CommunityID, in.TransactionID, strings.TrimSpace(in.StatusID), redeem.Actor(c.actor()))
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Transaction status updated successfully", out)
}

// orders is RR5: the community's orders, newest first, by status and date
// range.
func (s *Server) orders(c *call) error {
	skip, limit, pageErr := offsetPage(c.r)
	var v errs.Validator
	addFields(&v, pageErr)
	q := redeem.OrderQuery{Skip: skip, Limit: limit, Status: strings.TrimSpace(c.r.URL.Query().Get("status"))}
	if from := timeParam(c.r, "from", &v); from != nil {
		q.From = *from
	}
	if to := timeParam(c.r, "to", &v); to != nil {
		q.To = *to
	}
	v.Check(q.From.IsZero() || q.To.IsZero() || !q.To.Before(q.From), "to", "must not be before from")
	if err := v.Err(); err != nil {
		return err
	}
	list, total, err := s.Redeem.Orders(c.r.Context(), c.key.CommunityID, q)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Redemption transactions retrieved successfully", pageS("transactions", list, skip, limit, total))
}

// ordersByEmail is RR2: one member's orders, named by email in the body.
func (s *Server) ordersByEmail(c *call) error {
	var in byEmailInput
	if err := c.decode(&in); err != nil {
		return err
	}
	var v errs.Validator
	in.Email = strings.TrimSpace(in.Email)
	v.Check(strings.Contains(in.Email, "@") && len(in.Email) <= 254, "email", "is required: the member's email address")
	q := redeem.OrderQuery{Limit: defaultLimit, Status: strings.TrimSpace(in.Status)}
	if in.Skip != nil {
		q.Skip = *in.Skip
		v.Check(q.Skip >= 0, "skip", "must be a whole number of at least 0")
	}
	if in.Limit != nil {
		q.Limit = *in.Limit
		v.Check(q.Limit >= 1 && q.Limit <= maxLimit, "limit", "must be a whole number from 1 to %d", maxLimit)
	}
	if err := v.Err(); err != nil {
		return err
	}
	list, total, err := s.Redeem.OrdersByEmail(c.r.Context(), c.key.CommunityID, in.Email, q)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Redemption transactions retrieved successfully", pageS("transactions", list, q.Skip, q.Limit, total))
}

// addFields copies a 400's field errors into v (other errors are not
// validation errors and cannot occur here).
func addFields(v *errs.Validator, err error) {
	var e *errs.Error
	if errors.As(err, &e) {
		for _, f := range e.Fields {
			v.Add(f.Field, "%s", f.Message)
		}
	}
}
