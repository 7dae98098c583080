package role

import (
	"context"
	"fmt"
	"strings"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
)

// Override is one role's permission overrides on one channel: each of view,
// post, attach, mention and manage is allowed (true), denied (false) or, when
// absent, inherited from the role.
type Override struct {
	RoleID  string `json:"roleId"`
	View    *bool  `json:"view,omitempty"`
	Post    *bool  `json:"post,omitempty"`
	Attach  *bool  `json:"attach,omitempty"`
	Mention *bool  `json:"mention,omitempty"`
	Manage  *bool  `json:"manage,omitempty"`
}

// MaxOverrides bounds the roles a channel may carry overrides for.
const MaxOverrides = 100

// slots pairs each override key with the channel permission it sets.
func (o *Override) slots() []struct {
	perm string
	v    **bool
} {
	return []struct {
		perm string
		v    **bool
	}{
		{PermViewMessageHistory, &o.View}, {PermPostMessages, &o.Post}, {PermAttachFiles, &o.Attach},
		{PermAllowMentions, &o.Mention}, {PermManageMessages, &o.Manage},
	}
}

// SetChannelOverridesTx replaces the overrides of channelID with list, in
// tx. Every role must be a role of the community; a role named twice, an
// unknown role or an override setting nothing is named under
// overrides[i].roleId.
func (s *Service) SetChannelOverridesTx(ctx context.Context, tx *db.Tx, communityID, channelID string, list []Override) error {
	var v errs.Validator
	v.Check(len(list) <= MaxOverrides, "overrides", "may name at most %d roles", MaxOverrides)
	seen := map[string]bool{}
	for i := range list {
		field := fmt.Sprintf("overrides[%d].roleId", i)
		o := &list[i]
		o.RoleID = strings.ToLower(strings.TrimSpace(o.RoleID))
		if !id.Valid(o.RoleID) {
			v.Add(field, "must be a role _id")
			continue
		}
		if seen[o.RoleID] {
			v.Add(field, "names a role already listed")
			continue
		}
		seen[o.RoleID] = true
		var n int
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM roles WHERE community_id = ? AND id = ?", communityID, o.RoleID).Scan(&n); err != nil {
			return fmt.Errorf("check override role: %w", err)
		}
		v.Check(n == 1, field, "is not a role of this community")
	}
	if err := v.Err(); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "DELETE FROM channel_role_overrides WHERE channel_id = ?", channelID); err != nil {
		return fmt.Errorf("clear overrides: %w", err)
	}
	for i := range list {
		for _, sl := range list[i].slots() {
			if *sl.v == nil {
				continue
			}
			if _, err := tx.Exec(ctx, "INSERT INTO channel_role_overrides (channel_id, role_id, permission, allow) VALUES (?, ?, ?, ?)",
				channelID, list[i].RoleID, sl.perm, **sl.v); err != nil {
				return fmt.Errorf("store override: %w", err)
			}
		}
	}
	return nil
}

// ChannelOverrides returns the overrides of each channel in channelIDs, by
// channel, roles in id order.
func (s *Service) ChannelOverrides(ctx context.Context, channelIDs []string) (map[string][]Override, error) {
	out := map[string][]Override{}
	if len(channelIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(channelIDs))
	for i, c := range channelIDs {
		args[i] = c
	}
	rows, err := s.d.DB.Query(ctx, "SELECT channel_id, role_id, permission, allow FROM channel_role_overrides WHERE channel_id IN "+
		db.In(len(channelIDs))+" ORDER BY channel_id, role_id", args...)
	if err != nil {
		return nil, fmt.Errorf("read overrides: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			channelID, roleID, perm string
			allow                   bool
		)
		if err := rows.Scan(&channelID, &roleID, &perm, &allow); err != nil {
			return nil, fmt.Errorf("read overrides: %w", err)
		}
		list := out[channelID]
		if len(list) == 0 || list[len(list)-1].RoleID != roleID {
			list = append(list, Override{RoleID: roleID})
		}
		o := &list[len(list)-1]
		for _, sl := range o.slots() {
			if sl.perm == perm {
				b := allow
				*sl.v = &b
			}
		}
		out[channelID] = list
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read overrides: %w", err)
	}
	return out, nil
}

// ChannelPermissions returns what userID may do in channelID of the
// community: every permission key, true when granted. The owner and server
// administrators hold every permission; other live members hold their
// roles' union, adjusted by the channel's overrides: @all's override first,
// then the member's other roles, where one role allowing beats another
// denying. Non-members, pending and deleted members hold nothing. channelID
// "" gives the community-wide answer.
func (s *Service) ChannelPermissions(ctx context.Context, communityID, userID, channelID string) (Permissions, error) {
	st, err := s.standing(ctx, communityID, userID)
	if err != nil || !st.live {
		return Permissions{}.full(allPermissions), err
	}
	if st.owner || st.perms[PermServerAdministrator] {
		return Permissions{}.grantAll(), nil
	}
	if channelID != "" {
		if err := s.applyOverrides(ctx, communityID, userID, channelID, st.perms); err != nil {
			return nil, err
		}
	}
	return st.perms.full(allPermissions), nil
}

// allPermissions is every server and channel permission key.
var allPermissions = append(append([]string{}, ServerPermissions...), ChannelPermissions...)

// grantAll returns a map granting every key.
func (p Permissions) grantAll() Permissions {
	out := make(Permissions, len(allPermissions))
	for _, k := range allPermissions {
		out[k] = true
	}
	return out
}

// applyOverrides adjusts perms by the channel's overrides for the roles
// userID holds (@all included).
func (s *Service) applyOverrides(ctx context.Context, communityID, userID, channelID string, perms Permissions) error {
	rows, err := s.d.DB.Query(ctx, `SELECT o.permission, o.allow, r.is_everyone FROM channel_role_overrides o
		JOIN roles r ON r.id = o.role_id
		WHERE o.channel_id = ? AND r.community_id = ? AND (r.is_everyone = TRUE OR r.id IN
			(SELECT role_id FROM member_roles WHERE community_id = ? AND user_id = ?))`,
		channelID, communityID, communityID, userID)
	if err != nil {
		return fmt.Errorf("read overrides: %w", err)
	}
	defer rows.Close()
	allowed, denied := map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var (
			perm            string
			allow, everyone bool
		)
		if err := rows.Scan(&perm, &allow, &everyone); err != nil {
			return fmt.Errorf("read overrides: %w", err)
		}
		switch {
		case everyone:
			perms[perm] = allow
		case allow:
			allowed[perm] = true
		default:
			denied[perm] = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read overrides: %w", err)
	}
	for p := range denied {
		perms[p] = false
	}
	for p := range allowed {
		perms[p] = true
	}
	return nil
}
