package role

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/rallyhq/rally/internal/errs"
)

// Server permission keys: what a role may do in the community as a whole.
// The names are those of the documented role object (serverPermissions).
const (
	PermServerAdministrator = "server_administrator"
	PermAllowDM             = "allow_dm"
	PermCreateInvite        = "create_invite"
	PermKickMembers         = "kick_members"
	PermWarnMembers         = "warn_members"
	PermSuspendMembers      = "suspend_members"
	PermBanMembers          = "ban_members"
	PermBroadcastMessages   = "broadcast_messages"
	PermOverwriteLanguage   = "overwrite_language_settings"
	PermManageRoles         = "manage_roles"
	PermManageChannels      = "manage_channels"
)

// Channel permission keys: what a role may do inside channels
// (channelPermissions). Pinable, ShareLinks and ShareAttachments come from
// the older request edition, which the role object does not show; they are
// kept under their documented spelling (share_Attachments has a capital A).
const (
	PermViewMessageHistory = "view_message_history"
	PermPostMessages       = "post_messages"
	PermAttachFiles        = "attach_files"
	PermAllowMentions      = "allow_mentions"
	PermManageMessages     = "manage_messages"
	PermDeleteMessages     = "delete_messages"
	PermPostAnalysis       = "post_analysis"
	PermPinable            = "pinable"
	PermShareLinks         = "share_links"
	PermShareAttachments   = "share_Attachments"
)

// ServerPermissions lists every server permission key, in the order the
// documented role object shows them.
var ServerPermissions = []string{
	PermAllowDM, PermCreateInvite, PermKickMembers, PermBanMembers, PermManageRoles, PermManageChannels,
	PermServerAdministrator, PermWarnMembers, PermSuspendMembers, PermBroadcastMessages, PermOverwriteLanguage,
}

// ChannelPermissions lists every channel permission key.
var ChannelPermissions = []string{
	PermViewMessageHistory, PermManageMessages, PermAllowMentions, PermPostMessages, PermPostAnalysis,
	PermAttachFiles, PermDeleteMessages, PermPinable, PermShareLinks, PermShareAttachments,
}

// permissionAliases maps the older request edition's names to the role
// object's names for the same permission.
var permissionAliases = map[string]string{"overwrite_language": PermOverwriteLanguage}

// CanonicalPermission resolves aliases and reports whether p is a known
// permission key (server or channel).
func CanonicalPermission(p string) (string, bool) {
	if a, ok := permissionAliases[p]; ok {
		p = a
	}
	return p, slices.Contains(ServerPermissions, p) || slices.Contains(ChannelPermissions, p)
}

// Permissions is one permission map of a role (server or channel): every key
// of its set, true when granted.
type Permissions map[string]bool

// full returns a map holding every key of set: the granted ones from p, the
// rest false.
func (p Permissions) full(set []string) Permissions {
	out := make(Permissions, len(set))
	for _, k := range set {
		out[k] = p[k]
	}
	return out
}

// encode stores p as compact JSON (sorted keys, no spaces), the form Grants
// searches for "server_administrator":true.
func (p Permissions) encode() (string, error) {
	b, err := json.Marshal(map[string]bool(p))
	if err != nil {
		return "", fmt.Errorf("encode permissions: %w", err)
	}
	return string(b), nil
}

// decodePermissions reads a stored map and completes it to the full set.
func decodePermissions(s string, set []string) (Permissions, error) {
	var p Permissions
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, fmt.Errorf("decode permissions: %w", err)
	}
	return p.full(set), nil
}

// merge applies a client's permission object (raw JSON values by key) onto
// p, naming every unknown key, key of the other set and non-boolean value
// under field.
func (p Permissions) merge(v *errs.Validator, field string, in map[string]any, set []string) {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name, known := CanonicalPermission(k)
		if !known || !slices.Contains(set, name) {
			v.Add(field+"."+k, "is not a known permission here (known: %s)", strings.Join(set, ", "))
			continue
		}
		b, ok := in[k].(bool)
		if !ok {
			v.Add(field+"."+k, "must be a boolean")
			continue
		}
		p[name] = b
	}
}

// everyoneDefaults are the @all role's permissions when a community's @all
// is first made: members may talk, share files, mention, read history and
// send direct messages; nothing administrative.
func everyoneDefaults() (server, channel Permissions) {
	server = Permissions{PermAllowDM: true}.full(ServerPermissions)
	channel = Permissions{PermPostMessages: true, PermAttachFiles: true, PermAllowMentions: true,
		PermViewMessageHistory: true}.full(ChannelPermissions)
	return server, channel
}
