package auth

import "time"

// Community grants a signed-in user can hold, as the Application API names
// them: the owner, an administrator (a role with server_administrator), and
// any live member.
const (
	GrantOwner  = "COMMUNITY_OWNER"
	GrantAdmin  = "COMMUNITY_ADMIN"
	GrantMember = "APPLICATION_MEMBER"
)

// Session is a verified user session token: who signed in and when it ends.
type Session struct {
	UserID    string
	NumID     int64
	TokenID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
}
