// Package auth holds credentials: partner API keys with named permissions,
// the platform-admin key, and (later) user sessions. Keys are 64 lowercase
// hex characters from crypto/rand, stored only as a SHA-256 hash.
package auth

import "slices"

// Permissions is the catalogue of every permission identifier a partner key
// can hold: the ones the public docs name and the ones Rally decided in the
// same style (../shared/spec/endpoints.md, Legend). The contract
// (api/openapi.yaml, components.schemas.Permission) lists the same values.
var Permissions = []string{
	// Named by the docs.
	"createUser", "getUserData", "getUserStats", "manageUser", "bulkUpdateUser",
	"sendMessage", "replyMessage", "userFields", "appearance", "store", "purchase-history",
	// Decided by Rally.
	"getRoles", "manageRoles", "getChannels", "manageChannels", "getMessages", "reactMessage",
	"getBadges", "manageBadges", "getTiers", "manageGamification", "getStreaks", "manageStreaks",
	"manageMiniGames", "getAnalysis", "manageAnalysis", "bulkImportUser", "getAnalytics",
	"leaderboard", "getEvents", "manageReferrals", "getMilestones", "manageMilestones",
}

// aliases maps identifiers that mean the same as a catalogue entry.
var aliases = map[string]string{"sendMessages": "sendMessage"}

// CanonicalPermission returns the catalogue identifier for p (resolving
// aliases) and whether p is known.
func CanonicalPermission(p string) (string, bool) {
	if a, ok := aliases[p]; ok {
		p = a
	}
	return p, slices.Contains(Permissions, p)
}

// UserPermissions is the catalogue of permissions a user API key can hold
// (the User Api Key docs' identifiers): a user key acts as its owner, so it
// can only be narrowed to what the owner may do with their own data.
// `sendMessages` is accepted as an alias of `sendMessage`. The contract
// lists the same values (components.schemas.UserPermission).
var UserPermissions = []string{"sendMessage", "readOwnProfile", "updateOwnProfile", "readOwnMessages"}

// CanonicalUserPermission returns the user-key catalogue identifier for p
// (resolving aliases) and whether p is known.
func CanonicalUserPermission(p string) (string, bool) {
	if a, ok := aliases[p]; ok {
		p = a
	}
	return p, slices.Contains(UserPermissions, p)
}
