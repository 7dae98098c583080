package role_test

import (
	"context"
	"slices"
	"testing"

	"github.com/rallyhq/rally/internal/apitest"
	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/role"
	"github.com/rallyhq/rally/internal/user"
)

func TestCanAndGrants(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	roles := e.App.Roles
	a, _ := e.Community("Perm A", "perm-a")
	b, _ := e.Community("Perm B", "perm-b")

	owner := e.Member(a, "owner", user.MemberOptions{Joined: true, Owner: true})
	admin := e.Member(a, "admin", user.MemberOptions{Joined: true})
	mod := e.Member(a, "mod", user.MemberOptions{Joined: true})
	plain := e.Member(a, "plain", user.MemberOptions{Joined: true})
	pending := e.Member(a, "pending", user.MemberOptions{})
	deleted := e.Member(a, "deleted", user.MemberOptions{Joined: true})
	outsider := e.Member(b, "outsider", user.MemberOptions{Joined: true})

	adminRole, err := roles.Create(ctx, a, role.Input{Title: jsonx.Some("Admin"), Order: jsonx.Some(10),
		ServerSnake: jsonx.Some(map[string]any{"server_administrator": true})})
	if err != nil {
		t.Fatal(err)
	}
	modRole, err := roles.Create(ctx, a, role.Input{Title: jsonx.Some("Mod"), Order: jsonx.Some(5),
		ServerPermissions:  jsonx.Some(map[string]any{"ban_members": true}),
		ChannelPermissions: jsonx.Some(map[string]any{"delete_messages": true})})
	if err != nil {
		t.Fatal(err)
	}
	for _, as := range []struct {
		r role.Role
		u user.User
	}{{adminRole, admin}, {modRole, mod}, {modRole, deleted}} {
		if _, err := roles.Assign(ctx, a, as.r.ID, as.u.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.App.DB.Exec(ctx, "UPDATE members SET deleted_at = ? WHERE user_id = ?", e.Clock.Now().UnixMilli(), deleted.ID); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		who        string
		u          user.User
		perm       string
		want       bool
		wantGrants []string
	}{
		{"owner", owner, role.PermManageRoles, true, []string{auth.GrantMember, auth.GrantOwner, auth.GrantAdmin}},
		{"owner", owner, role.PermShareLinks, true, nil},
		{"admin role", admin, role.PermBanMembers, true, []string{auth.GrantMember, auth.GrantAdmin}},
		{"admin role", admin, role.PermPinable, true, nil},
		{"moderator", mod, role.PermBanMembers, true, []string{auth.GrantMember}},
		{"moderator", mod, role.PermDeleteMessages, true, nil},
		{"moderator", mod, role.PermManageRoles, false, nil},
		{"moderator via @all", mod, role.PermPostMessages, true, nil},
		{"plain member", plain, role.PermPostMessages, true, []string{auth.GrantMember}},
		{"plain member", plain, role.PermAllowDM, true, nil},
		{"plain member", plain, role.PermViewMessageHistory, true, nil},
		{"plain member", plain, role.PermBanMembers, false, nil},
		{"plain member", plain, role.PermManageMessages, false, nil},
		{"pending member", pending, role.PermPostMessages, false, []string{}},
		{"deleted member", deleted, role.PermBanMembers, false, []string{}},
		{"deleted member", deleted, role.PermPostMessages, false, nil},
		{"non-member", outsider, role.PermPostMessages, false, []string{}},
	}
	for _, tc := range cases {
		got, err := roles.Can(ctx, a, tc.u.ID, "", tc.perm)
		if err != nil || got != tc.want {
			t.Errorf("%s Can(%s) = %v, %v; want %v", tc.who, tc.perm, got, err, tc.want)
		}
		if tc.wantGrants != nil {
			grants, err := roles.Grants(ctx, a, tc.u.ID)
			if err != nil || !slices.Equal(append([]string{}, grants...), tc.wantGrants) {
				t.Errorf("%s Grants = %v, %v; want %v", tc.who, grants, err, tc.wantGrants)
			}
		}
	}
	if _, err := roles.Can(ctx, a, plain.ID, "", "fly"); err == nil {
		t.Error("unknown permission must be an error")
	}
	// The older edition's name is an alias.
	if ok, err := roles.Can(ctx, a, plain.ID, "", "overwrite_language"); err != nil || ok {
		t.Errorf("alias for a plain member = %v, %v", ok, err)
	}

	// Editing @all changes every member at once: revoking post_messages
	// silences plain members; granting server_administrator makes every
	// member an admin.
	list, _, err := roles.List(ctx, a, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	all := list[len(list)-1]
	if all.Title != role.EveryoneTitle {
		t.Fatalf("last role %q, want @all", all.Title)
	}
	if _, err := roles.Update(ctx, a, all.ID, role.Input{ChannelPermissions: jsonx.Some(map[string]any{"post_messages": false})}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := roles.Can(ctx, a, plain.ID, "", role.PermPostMessages); ok {
		t.Error("plain member may still post after @all lost post_messages")
	}
	if ok, _ := roles.Can(ctx, a, admin.ID, "", role.PermPostMessages); !ok {
		t.Error("admin lost post_messages with @all")
	}
	if _, err := roles.Update(ctx, a, all.ID, role.Input{ServerPermissions: jsonx.Some(map[string]any{"server_administrator": true})}); err != nil {
		t.Fatal(err)
	}
	grants, err := roles.Grants(ctx, a, plain.ID)
	if err != nil || !slices.Contains(grants, auth.GrantAdmin) {
		t.Errorf("@all admin: plain member grants %v, %v", grants, err)
	}
	titles, highest, err := roles.MemberRoleTitles(ctx, a, admin.ID)
	if err != nil || highest != "Admin" || !slices.Equal(titles, []string{"Admin", "@all"}) {
		t.Errorf("MemberRoleTitles(admin) = %v %q %v", titles, highest, err)
	}
	if _, _, err := roles.MemberRoleTitles(ctx, a, outsider.ID); err == nil {
		t.Error("MemberRoleTitles of a non-member must be NotFound")
	}
}

// TestCanBeforeEveryoneExists: a community whose @all was never listed
// still gives members the @all defaults.
func TestCanBeforeEveryoneExists(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	a, _ := e.Community("Fresh", "fresh")
	u := e.Member(a, "newbie", user.MemberOptions{Joined: true})
	if ok, err := e.App.Roles.Can(ctx, a, u.ID, "", role.PermPostMessages); err != nil || !ok {
		t.Fatalf("post_messages = %v, %v", ok, err)
	}
	if ok, err := e.App.Roles.Can(ctx, a, u.ID, "", role.PermServerAdministrator); err != nil || ok {
		t.Fatalf("server_administrator = %v, %v", ok, err)
	}
	roles, err := e.App.Roles.MemberRoles(ctx, a, u.ID)
	if err != nil || len(roles) != 1 || !roles[0].Everyone || roles[0].Order != 0 {
		t.Fatalf("MemberRoles = %+v, %v", roles, err)
	}
}
