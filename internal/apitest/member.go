package apitest

import (
	"context"

	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/user"
)

// Member creates the account name (email name@example.com) and makes it a
// joined member of communityID.
func (e *Env) Member(communityID, name string) user.User {
	e.T.Helper()
	ctx := context.Background()
	var u user.User
	err := e.App.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if u, err = e.App.Users.CreateAccountTx(ctx, tx, user.NewAccount{Email: name + "@example.com", Username: name}); err != nil {
			return err
		}
		_, err = e.App.Users.AddMemberTx(ctx, tx, communityID, u, user.MemberOptions{AccessLevel: 1, Joined: true})
		return err
	})
	if err != nil {
		e.T.Fatalf("create member %s: %v", name, err)
	}
	return u
}
