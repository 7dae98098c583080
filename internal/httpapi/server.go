// Package httpapi is Rally's HTTP layer: routing with every documented path
// form, authentication and permissions, envelopes per family, error mapping,
// logging, metrics and recovery. Handlers parse and authorise, call a domain
// service, and shape the answer; they hold no business rules.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/badge"
	"github.com/rallyhq/rally/internal/blob"
	"github.com/rallyhq/rally/internal/channel"
	"github.com/rallyhq/rally/internal/community"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/gamification"
	"github.com/rallyhq/rally/internal/idem"
	"github.com/rallyhq/rally/internal/leaderboard"
	"github.com/rallyhq/rally/internal/message"
	"github.com/rallyhq/rally/internal/milestone"
	"github.com/rallyhq/rally/internal/minigame"
	"github.com/rallyhq/rally/internal/realtime"
	"github.com/rallyhq/rally/internal/redeem"
	"github.com/rallyhq/rally/internal/referral"
	"github.com/rallyhq/rally/internal/role"
	"github.com/rallyhq/rally/internal/store"
	"github.com/rallyhq/rally/internal/streak"
	"github.com/rallyhq/rally/internal/user"
	"github.com/rallyhq/rally/internal/userfield"
	"github.com/rallyhq/rally/internal/wallet"
)

// DefaultMaxBodyBytes bounds a JSON request body (1 MiB).
const DefaultMaxBodyBytes = 1 << 20

// Deps are the services the HTTP layer serves.
type Deps struct {
	Logger      *slog.Logger
	DB          *db.DB
	Keys        *auth.Keys
	Communities *community.Service
	Events      EventFeed
	Roles       *role.Service
	UserFields  *userfield.Service
	// Store serves the rewards store catalogue.
	Store *store.Service
	// Sessions verifies signed-in users' session tokens.
	Sessions Sessions
	// Grants tells which community grants a signed-in user holds.
	Grants Grants
	// Accounts signs users up and in, runs Secure Auth and user API keys.
	Accounts *auth.Accounts
	// TrustProxy takes the client address from X-Forwarded-For.
	TrustProxy bool
	// Wallet moves and reads members' currency balances.
	Wallet *wallet.Service
	// Idempotency records the answers of value-moving writes (Idempotency-Key).
	Idempotency *idem.Keeper
	// Users is the partner-facing user service.
	Users *user.Service
	// Badges holds badges, their awards and applications.
	Badges *badge.Service
	// Files stores and serves uploaded files (avatars).
	Files *blob.Store
	// UserStore finds members named in request bodies.
	UserStore *user.Store
	// Streaks keeps streak definitions and members' streaks.
	Streaks *streak.Service
	// MiniGames runs the spin wheel.
	MiniGames *minigame.Service
	// Gamification serves XP and tier settings and activity history.
	Gamification *gamification.Service
	// Redeem runs store purchases, orders and redemption statuses.
	Redeem *redeem.Service
	// Channels and Messages serve channels and messaging.
	Channels *channel.Service
	Messages *message.Service
	// Registry receives the HTTP metrics and is served at /metrics.
	Registry *prometheus.Registry
	// OpenAPI is the contract served at /openapi.yaml.
	OpenAPI []byte
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Leaderboards serves leaderboards and their standings.
	Leaderboards *leaderboard.Service
	// Referrals serves referral settings, programs and summaries.
	Referrals *referral.Service
	// Milestones serves milestones and members' progress toward them.
	Milestones *milestone.Service
	// AccessLog writes one log line per request when true.
	AccessLog bool
	// Realtime serves the live message stream (GET /v1/realtime).
	Realtime *realtime.Hub
}

// Sessions verifies session tokens (JWTs) of signed-in users.
type Sessions interface {
	Authenticate(ctx context.Context, token string) (auth.Session, error)
}

// Grants reports the community grants (auth.GrantOwner, auth.GrantAdmin,
// auth.GrantMember) a user holds; none for non-members.
type Grants interface {
	Grants(ctx context.Context, communityID, userID string) ([]string, error)
}

// Server is the HTTP handler for the whole API.
type Server struct {
	Deps
	log       *slog.Logger
	metrics   *metrics
	raw       *http.ServeMux // paths matched before normalising
	mux       *http.ServeMux // normalised paths
	accessLog bool
	handler   http.Handler
	// bodyLimits raise the body limit of the routes that take uploads,
	// keyed by normalised path or by a path.Match pattern of one ("*" stands
	// for one path segment).
	bodyLimits map[string]int64
	// rawPrefixes are the literal starts of the raw mux's patterns.
	rawPrefixes []string
}

// New builds the API handler.
func New(d Deps) *Server {
	if d.MaxBodyBytes == 0 {
		d.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	s := &Server{Deps: d, log: d.Logger, raw: http.NewServeMux(), mux: http.NewServeMux(), accessLog: d.AccessLog,
		bodyLimits: map[string]int64{}}
	s.metrics = newMetrics(d.Registry)
	s.routes()
	s.handler = s.observe(http.HandlerFunc(s.dispatch))
	return s
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// routes registers every endpoint. Patterns are written without a prefix;
// every documented prefix form reaches them through normalisePath.
func (s *Server) routes() {
	s.systemRoutes()
	s.communityRoutes()
	s.appearanceRoutes()
	s.eventRoutes()
	s.roleRoutes()
	s.userFieldRoutes()
	s.storeRoutes()
	s.authRoutes()
	s.walletRoutes()
	s.userRoutes()
	s.streakRoutes()
	s.badgeRoutes()
	s.gamificationRoutes()
	s.redeemRoutes()
	s.messagingRoutes()
	s.leaderboardRoutes()
	s.referralRoutes()
	s.milestoneRoutes()
	s.realtimeRoutes()
}
