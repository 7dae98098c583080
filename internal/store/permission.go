package store

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rallyhq/rally/internal/errs"
)

// Combination is a rule that needs several references at once (for
// example a role and a tag).
type Combination struct {
	Type   string   `json:"type"`
	Values []string `json:"values"`
}

// Refs names who a permission entry is about. Both vocabularies are kept:
// readable names (roles, tags, users: role titles, tag names, usernames)
// and ids (roleIDs, tagIDs, userIDs). They are stored as given and matched
// when a member's access is decided.
type Refs struct {
	Roles       []string      `json:"roles"`
	Tags        []string      `json:"tags"`
	Users       []string      `json:"users"`
	RoleIDs     []string      `json:"roleIDs"`
	TagIDs      []string      `json:"tagIDs"`
	UserIDs     []string      `json:"userIDs"`
	Combination []Combination `json:"combination"`
	IsSelectAll bool          `json:"isSelectAll"`
}

// RefsInput accepts the name-based vocabulary (roleNames, tagNames,
// usernames; roles, tags, users as in responses) and the id-based one
// (roleIDs, tagIDs, userIDs).
type RefsInput struct {
	RoleNames   []string      `json:"roleNames"`
	Roles       []string      `json:"roles"`
	TagNames    []string      `json:"tagNames"`
	Tags        []string      `json:"tags"`
	Usernames   []string      `json:"usernames"`
	Users       []string      `json:"users"`
	RoleIDs     []string      `json:"roleIDs"`
	TagIDs      []string      `json:"tagIDs"`
	UserIDs     []string      `json:"userIDs"`
	Combination []Combination `json:"combination"`
	IsSelectAll bool          `json:"isSelectAll"`
}

// union merges lists keeping the first spelling of each entry.
func union(lists ...[]string) []string {
	out := []string{}
	for _, l := range lists {
		for _, s := range l {
			if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, s) }) {
				out = append(out, s)
			}
		}
	}
	return out
}

var combinationTypes = []string{"role", "tag", "user"}

func (in RefsInput) refs(v *errs.Validator, field string) Refs {
	r := Refs{
		Roles:       union(refList(v, field+".roleNames", in.RoleNames), refList(v, field+".roles", in.Roles)),
		Tags:        union(refList(v, field+".tagNames", in.TagNames), refList(v, field+".tags", in.Tags)),
		Users:       union(refList(v, field+".usernames", in.Usernames), refList(v, field+".users", in.Users)),
		RoleIDs:     union(idList(v, field+".roleIDs", in.RoleIDs)),
		TagIDs:      union(idList(v, field+".tagIDs", in.TagIDs)),
		UserIDs:     union(idList(v, field+".userIDs", in.UserIDs)),
		Combination: orEmpty(in.Combination),
		IsSelectAll: in.IsSelectAll,
	}
	v.Check(len(in.Combination) <= maxListItems, field+".combination", "must hold at most %d entries", maxListItems)
	for i, c := range in.Combination {
		f := fmt.Sprintf("%s.combination[%d]", field, i)
		v.Check(slices.Contains(combinationTypes, c.Type), f+".type", "must be one of %s", strings.Join(combinationTypes, ", "))
		r.Combination[i].Values = union(refList(v, f+".values", c.Values))
	}
	return r
}

// PurchaseLimit caps how many a member may buy per interval (a category
// entry's limit, and a product's own per-member limit).
type PurchaseLimit struct {
	IsEnabled     bool   `json:"isEnabled"`
	Quantity      int    `json:"quantity"`
	IntervalCount int    `json:"intervalCount"`
	IntervalUnit  string `json:"intervalUnit"`
}

// ProductPurchaseLimit is a product permission entry's limit; the docs name
// its switch isPurchaseLimitEnabled.
type ProductPurchaseLimit struct {
	IsPurchaseLimitEnabled bool   `json:"isPurchaseLimitEnabled"`
	Quantity               int    `json:"quantity"`
	IntervalCount          int    `json:"intervalCount"`
	IntervalUnit           string `json:"intervalUnit"`
}

// LimitInput is a purchase limit as sent; either switch name is accepted.
type LimitInput struct {
	IsEnabled              *bool   `json:"isEnabled"`
	IsPurchaseLimitEnabled *bool   `json:"isPurchaseLimitEnabled"`
	Quantity               *int    `json:"quantity"`
	IntervalCount          *int    `json:"intervalCount"`
	IntervalUnit           *string `json:"intervalUnit"`
}

var intervalUnits = []string{"days", "weeks", "months", "years", "lifetime"}

// limit validates a purchase limit; absent parts take the defaults (off,
// one per one month).
func (in *LimitInput) limit(v *errs.Validator, field string) PurchaseLimit {
	l := PurchaseLimit{Quantity: 1, IntervalCount: 1, IntervalUnit: "months"}
	if in == nil {
		return l
	}
	put(&l.IsEnabled, in.IsEnabled)
	put(&l.IsEnabled, in.IsPurchaseLimitEnabled)
	put(&l.Quantity, in.Quantity)
	put(&l.IntervalCount, in.IntervalCount)
	put(&l.IntervalUnit, in.IntervalUnit)
	l.IntervalUnit = strings.ToLower(l.IntervalUnit)
	if !strings.HasSuffix(l.IntervalUnit, "s") && l.IntervalUnit != "lifetime" {
		l.IntervalUnit += "s" // "month" means "months"
	}
	v.Check(l.Quantity >= 1 && l.Quantity <= maxOrderValue, field+".quantity", "must be 1 to %d", maxOrderValue)
	v.Check(l.IntervalCount >= 1 && l.IntervalCount <= 1000, field+".intervalCount", "must be 1 to 1000")
	v.Check(slices.Contains(intervalUnits, l.IntervalUnit), field+".intervalUnit", "must be one of %s", strings.Join(intervalUnits, ", "))
	return l
}

// PurchaseAccess is a product entry's special price for the members it
// matches.
type PurchaseAccess struct {
	SpecialPrice          int64 `json:"specialPrice"`
	IsSpecialPriceEnabled bool  `json:"isSpecialPriceEnabled"`
}

// CategoryRule is one entry of a category's categoryPermission.
type CategoryRule struct {
	Type          string        `json:"type"`
	Permission    Refs          `json:"permission"`
	PurchaseLimit PurchaseLimit `json:"purchaseLimit"`
	AccessLevel   string        `json:"accessLevel"`
	IsEnabled     bool          `json:"isEnabled"`
}

// ProductRule is one entry of a product's productPermission: who it is
// about, what they may do and pay, and how many they may buy.
type ProductRule struct {
	IsEnabled             bool                 `json:"isEnabled"`
	Type                  string               `json:"type"`
	Permission            Refs                 `json:"permission"`
	PurchaseAccess        PurchaseAccess       `json:"purchaseAccess"`
	PurchaseLimit         ProductPurchaseLimit `json:"purchaseLimit"`
	AccessLevel           string               `json:"accessLevel"`
	IsExclusiveTagEnabled bool                 `json:"isExclusiveTagEnabled"`
}

// RuleInput is a permission entry as sent, for categories and products.
type RuleInput struct {
	IsEnabled             *bool           `json:"isEnabled"`
	Type                  string          `json:"type"`
	Permission            RefsInput       `json:"permission"`
	PurchaseAccess        *PurchaseAccess `json:"purchaseAccess"`
	PurchaseLimit         *LimitInput     `json:"purchaseLimit"`
	AccessLevel           string          `json:"accessLevel"`
	IsExclusiveTagEnabled bool            `json:"isExclusiveTagEnabled"`
}

var (
	ruleTypes    = []string{"role", "tag", "user", "combination", "everyone"}
	accessLevels = []string{"full-access", "view-only", "no-access"}
)

// common validates what category and product entries share.
func (in RuleInput) common(v *errs.Validator, field string) (typ string, refs Refs, limit PurchaseLimit, access string, enabled bool) {
	v.Check(slices.Contains(ruleTypes, in.Type), field+".type", "must be one of %s", strings.Join(ruleTypes, ", "))
	access = in.AccessLevel
	if access == "" {
		access = "full-access"
	}
	v.Check(slices.Contains(accessLevels, access), field+".accessLevel", "must be one of %s", strings.Join(accessLevels, ", "))
	enabled = true
	put(&enabled, in.IsEnabled)
	return in.Type, in.Permission.refs(v, field+".permission"), in.PurchaseLimit.limit(v, field+".purchaseLimit"), access, enabled
}

// categoryRules validates a whole categoryPermission list.
func categoryRules(v *errs.Validator, field string, in []RuleInput) []CategoryRule {
	v.Check(len(in) <= maxListItems, field, "must hold at most %d entries", maxListItems)
	out := make([]CategoryRule, 0, len(in))
	for i, r := range in {
		typ, refs, limit, access, enabled := r.common(v, fmt.Sprintf("%s[%d]", field, i))
		out = append(out, CategoryRule{Type: typ, Permission: refs, PurchaseLimit: limit, AccessLevel: access, IsEnabled: enabled})
	}
	return out
}

// productRules validates a whole productPermission list.
func productRules(v *errs.Validator, field string, in []RuleInput) []ProductRule {
	v.Check(len(in) <= maxListItems, field, "must hold at most %d entries", maxListItems)
	out := make([]ProductRule, 0, len(in))
	for i, r := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		typ, refs, limit, access, enabled := r.common(v, f)
		pa := PurchaseAccess{}
		put(&pa, r.PurchaseAccess)
		v.Check(pa.SpecialPrice >= 0 && pa.SpecialPrice <= maxPrice, f+".purchaseAccess.specialPrice", "must be 0 to %d", int64(maxPrice))
		out = append(out, ProductRule{
			IsEnabled: enabled, Type: typ, Permission: refs, PurchaseAccess: pa, AccessLevel: access,
			PurchaseLimit: ProductPurchaseLimit{IsPurchaseLimitEnabled: limit.IsEnabled, Quantity: limit.Quantity,
				IntervalCount: limit.IntervalCount, IntervalUnit: limit.IntervalUnit},
			IsExclusiveTagEnabled: r.IsExclusiveTagEnabled,
		})
	}
	return out
}
