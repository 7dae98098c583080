package badge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/rallyhq/rally/internal/blob"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jsonx"
	"github.com/rallyhq/rally/internal/wallet"
)

// Application statuses.
const (
	StatusPending  = "pending"
	StatusApproved = "approved"
	StatusRejected = "rejected"
)

// Statuses lists the application statuses.
var Statuses = []string{StatusPending, StatusApproved, StatusRejected}

const (
	maxProofLen  = 2000
	maxReasonLen = 500
	// maxProofNameLen bounds the kept name of a proof file (longer names
	// are cut).
	maxProofNameLen = 255
)

// MaxProofFileBytes bounds one proof file.
const MaxProofFileBytes = 10 << 20

// ProofUpload is a proof file a member sends with an application: the name
// it was sent with, its Content-Type told from its content, its bytes.
type ProofUpload struct {
	Name string
	Type string
	Data []byte
}

// ProofFile is an application's stored proof file, in the shape of a
// message attachment: id is its blob key, url where it is served.
type ProofFile struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	URL  string `json:"url"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

// Application is a member's request for a custom badge, with its proof and,
// once decided, who decided it and why.
type Application struct {
	ID        string `json:"_id"`
	BadgeID   string `json:"badgeId"`
	UserID    string `json:"userId"`
	Status    string `json:"status"`
	ProofText string `json:"proofText"`
	ProofURL  string `json:"proofUrl"`
	// ProofFile is the uploaded proof file (null when none was sent).
	ProofFile *ProofFile `json:"proofFile"`
	// Reason is the moderator's note on a rejection.
	Reason string `json:"reason"`
	// AwardID names the award an approval made.
	AwardID   string        `json:"awardId,omitempty"`
	DecidedBy *wallet.Actor `json:"decidedBy,omitempty"`
	DecidedAt *jsonx.Time   `json:"decidedAt,omitempty"`
	CreatedAt jsonx.Time    `json:"createdAt"`
}

// ApplyInput is a member's application: optional proof as text, a URL
// and/or an uploaded file (an image or a PDF); a badge with attachRequired
// needs at least one of them.
type ApplyInput struct {
	ProofText string       `json:"proofText"`
	ProofURL  string       `json:"proofUrl"`
	ProofFile *ProofUpload `json:"-"`
}

// Apply records userID's (a live member's _id) application for a custom
// badge. Only badges with action "custom" take applications (Conflict
// otherwise), a member has at most one pending application per badge, and
// a member already holding a single-award badge cannot apply for it again.
// A proof file is stored in the blob store once the application is valid;
// urlOf turns its key into the URL it is served at.
func (s *Service) Apply(ctx context.Context, communityID, badgeID, userID string, in ApplyInput, urlOf func(key string) string) (Application, error) {
	in.ProofText, in.ProofURL = strings.TrimSpace(in.ProofText), strings.TrimSpace(in.ProofURL)
	var a Application
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		b, err := getBadge(ctx, tx, communityID, badgeID, false)
		if err != nil {
			return err
		}
		var v errs.Validator
		v.Check(utf8.RuneCountInString(in.ProofText) <= maxProofLen, "proofText", "must be at most %d characters", maxProofLen)
		v.Check(CheckURL(in.ProofURL), "proofUrl", "must be an http(s) URL of at most %d characters", maxURLLen)
		if f := in.ProofFile; f != nil {
			if len(f.Data) > MaxProofFileBytes {
				return errs.New(errs.TooLarge, "The proof file is larger than %d MiB.", MaxProofFileBytes>>20)
			}
			_, kept := blob.Extension(f.Type)
			v.Check(len(f.Data) > 0, "proof", "must not be empty")
			v.Check(len(f.Data) == 0 || kept, "proof", "must be a PNG, JPEG, WebP or GIF image or a PDF document")
		}
		if b.AttachRequired && in.ProofText == "" && in.ProofURL == "" && in.ProofFile == nil {
			v.Add("proofUrl", "is required: this badge needs proof (a proof file, proofUrl or proofText)")
		}
		if err := v.Err(); err != nil {
			return err
		}
		if b.Action != ActionCustom {
			return errs.Conflictf("This badge is awarded automatically; members cannot apply for it.")
		}
		if !b.MultipleAwards {
			if _, err := heldOne(ctx, tx, communityID, b.ID, userID); err == nil {
				return errs.Conflictf("User already has this badge.")
			} else if errs.KindOf(err) != errs.NotFound {
				return err
			}
		}
		now := s.d.Clock.Now()
		a = Application{ID: id.New(now), BadgeID: b.ID, UserID: userID, Status: StatusPending, ProofText: in.ProofText,
			ProofURL: in.ProofURL, CreatedAt: jsonx.At(now)}
		var pf ProofFile
		if f := in.ProofFile; f != nil {
			key, err := s.d.Files.PutTx(ctx, tx, f.Data, f.Type)
			if err != nil {
				return fmt.Errorf("store proof file: %w", err)
			}
			pf = ProofFile{ID: key, Name: proofName(f.Name, key), URL: urlOf(key), Type: f.Type, Size: int64(len(f.Data))}
			a.ProofFile = &pf
		}
		_, err = tx.Exec(ctx, `INSERT INTO badge_applications (id, community_id, badge_id, user_id, status, proof_text, proof_url,
			proof_file_url, proof_file_key, proof_file_name, proof_file_type, proof_file_size, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, communityID, a.BadgeID, a.UserID, a.Status, a.ProofText, a.ProofURL, pf.URL, pf.ID, pf.Name, pf.Type, pf.Size, now.UnixMilli())
		if db.IsUniqueViolation(err) {
			return errs.Conflictf("An application for this badge is already pending.")
		}
		if err != nil {
			return fmt.Errorf("record badge application: %w", err)
		}
		return s.d.Events.Append(ctx, tx, communityID, "badge.applied", a)
	})
	if err != nil {
		return Application{}, err
	}
	return a, nil
}

// proofName is the kept name of a proof file: the base name it was sent
// with, cut to maxProofNameLen characters, or its key when it had none.
func proofName(name, key string) string {
	name = strings.TrimSpace(path.Base(strings.ReplaceAll(name, "\\", "/")))
	if name == "." || name == "/" || name == "" {
		return key
	}
	if r := []rune(name); len(r) > maxProofNameLen {
		name = string(r[:maxProofNameLen])
	}
	return name
}

// ApplicationQuery selects applications; empty fields do not filter.
type ApplicationQuery struct {
	Status, BadgeID, UserID string
	Skip, Limit             int
}

// Applications lists the community's applications matching q, newest
// first, with the total matching.
func (s *Service) Applications(ctx context.Context, communityID string, q ApplicationQuery) ([]Application, int, error) {
	where, args := "WHERE community_id = ?", []any{communityID}
	for _, f := range []struct{ col, val string }{{"status", q.Status}, {"badge_id", strings.ToLower(q.BadgeID)}, {"user_id", q.UserID}} {
		if f.val != "" {
			where, args = where+" AND "+f.col+" = ?", append(args, f.val)
		}
	}
	var total int
	if err := s.d.DB.QueryRow(ctx, "SELECT COUNT(*) FROM badge_applications "+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count badge applications: %w", err)
	}
	rows, err := s.d.DB.Query(ctx, "SELECT "+applicationColumns+" FROM badge_applications "+where+" ORDER BY seq DESC LIMIT ? OFFSET ?",
		append(args, q.Limit, q.Skip)...)
	out, err := db.Collect(rows, err, "list badge applications", func(r db.Scanner) (Application, error) { return scanApplication(r) })
	// The proof file of an application rejected long ago is no longer kept
	// (the blob sweep deletes it), so it is not shown.
	expired := s.d.Clock.Now().Add(-blob.RejectedProofRetention)
	for i := range out {
		if a := &out[i]; a.Status == StatusRejected && a.DecidedAt != nil && a.DecidedAt.Before(expired) {
			a.ProofFile = nil
		}
	}
	return out, total, err
}

// Approve decides a pending application for the badge and awards it in the
// same transaction (AwardTx, so its XP and coins are granted exactly once).
// Deciding an application twice is a Conflict; so is approving a
// single-award badge the member already holds (the application stays
// pending, to be rejected).
func (s *Service) Approve(ctx context.Context, communityID, applicationID string, actor wallet.Actor) (Application, Award, Held, error) {
	var (
		a   Application
		aw  Award
		got Held
	)
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if a, err = pendingApplication(ctx, tx, communityID, applicationID); err != nil {
			return err
		}
		if aw, got, err = s.AwardTx(ctx, tx, Grant{CommunityID: communityID, BadgeID: a.BadgeID, UserID: a.UserID, Quantity: 1,
			ApplicationID: a.ID, Actor: actor}); err != nil {
			return err
		}
		a.AwardID = aw.ID
		if err := s.decide(ctx, tx, communityID, &a, StatusApproved, "", actor); err != nil {
			return err
		}
		return s.d.Events.Append(ctx, tx, communityID, "badge.application.approved", a)
	})
	if err != nil {
		return Application{}, Award{}, Held{}, err
	}
	return a, aw, got, nil
}

// Reject decides a pending application against the member, with an
// optional reason shown to them.
func (s *Service) Reject(ctx context.Context, communityID, applicationID, reason string, actor wallet.Actor) (Application, error) {
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > maxReasonLen {
		var v errs.Validator
		v.Add("reason", "must be at most %d characters", maxReasonLen)
		return Application{}, v.Err()
	}
	var a Application
	err := s.d.DB.Tx(ctx, func(tx *db.Tx) error {
		var err error
		if a, err = pendingApplication(ctx, tx, communityID, applicationID); err != nil {
			return err
		}
		if err := s.decide(ctx, tx, communityID, &a, StatusRejected, reason, actor); err != nil {
			return err
		}
		return s.d.Events.Append(ctx, tx, communityID, "badge.application.rejected", a)
	})
	if err != nil {
		return Application{}, err
	}
	return a, nil
}

// decide writes a's decision.
func (s *Service) decide(ctx context.Context, tx *db.Tx, communityID string, a *Application, status, reason string, actor wallet.Actor) error {
	now := s.d.Clock.Now()
	at := jsonx.At(now)
	a.Status, a.Reason, a.DecidedBy, a.DecidedAt = status, reason, &actor, &at
	if _, err := tx.Exec(ctx, `UPDATE badge_applications SET status = ?, reason = ?, award_id = ?, decided_by_kind = ?, decided_by_id = ?,
		decided_at = ? WHERE id = ? AND community_id = ?`, status, reason, a.AwardID, actor.Kind, actor.ID, now.UnixMilli(), a.ID, communityID); err != nil {
		return fmt.Errorf("decide badge application %s: %w", a.ID, err)
	}
	return nil
}

// pendingApplication reads and locks an application of the community that
// is still pending (Conflict when it was decided, NotFound when unknown).
func pendingApplication(ctx context.Context, tx *db.Tx, communityID, applicationID string) (Application, error) {
	if !id.Valid(applicationID) {
		return Application{}, errs.NotFoundf("Badge application not found.")
	}
	a, err := scanApplication(tx.QueryRow(ctx, "SELECT "+applicationColumns+" FROM badge_applications WHERE id = ? AND community_id = ?"+
		tx.DB().ForUpdate(), strings.ToLower(applicationID), communityID))
	if err != nil {
		return Application{}, err
	}
	if a.Status != StatusPending {
		return Application{}, errs.Conflictf("This application was already %s.", a.Status)
	}
	return a, nil
}

const applicationColumns = `id, badge_id, user_id, status, proof_text, proof_url, proof_file_url, proof_file_name, proof_file_type,
	proof_file_size, reason, award_id, decided_by_kind, decided_by_id, decided_at, created_at`

func scanApplication(r interface{ Scan(...any) error }) (Application, error) {
	var (
		a            Application
		kind, actor  string
		decided      sql.NullInt64
		createdMilli int64
		pf           ProofFile
	)
	err := r.Scan(&a.ID, &a.BadgeID, &a.UserID, &a.Status, &a.ProofText, &a.ProofURL, &pf.URL, &pf.Name, &pf.Type, &pf.Size,
		&a.Reason, &a.AwardID, &kind, &actor, &decided, &createdMilli)
	if errors.Is(err, sql.ErrNoRows) {
		return Application{}, errs.NotFoundf("Badge application not found.")
	}
	if err != nil {
		return Application{}, fmt.Errorf("scan badge application: %w", err)
	}
	if decided.Valid {
		at := jsonx.Millis(decided.Int64)
		a.DecidedAt, a.DecidedBy = &at, &wallet.Actor{Kind: kind, ID: actor}
	}
	if pf.URL != "" {
		pf.ID = path.Base(pf.URL)
		a.ProofFile = &pf
	}
	a.CreatedAt = jsonx.Millis(createdMilli)
	return a, nil
}
