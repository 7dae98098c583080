// Package mail sends Rally's email (verification codes) durably: a message
// is written to the mail_outbox table and a River job is enqueued in the
// caller's transaction; the job delivers it through SMTP, or, when no SMTP
// server is configured, logs it and leaves it in mail_outbox for the
// operator to read.
package mail

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/rallyhq/rally/internal/clock"
	"github.com/rallyhq/rally/internal/db"
	"github.com/rallyhq/rally/internal/id"
	"github.com/rallyhq/rally/internal/jobs"
)

// Message statuses in mail_outbox.
const (
	// StatusQueued waits for its delivery job.
	StatusQueued = "queued"
	// StatusSent was accepted by the SMTP server.
	StatusSent = "sent"
	// StatusLogged was logged instead of sent (no SMTP configured).
	StatusLogged = "logged"
)

// Message is one plain-text email.
type Message struct {
	To      string
	Subject string
	Text    string
}

// Stored is a message as kept in mail_outbox.
type Stored struct {
	ID        string
	To        string
	Subject   string
	Body      string
	Status    string
	Error     string
	CreatedAt time.Time
	SentAt    *time.Time
}

// SMTP is a parsed RALLY_SMTP_URL: smtp://user:pass@host:port?from=addr
// (STARTTLS when the server offers it) or smtps://... (TLS from the start).
type SMTP struct {
	Host     string
	Port     string
	Username string
	Password string
	From     string
	// ImplicitTLS is true for smtps://.
	ImplicitTLS bool
}

// ParseSMTPURL reads an SMTP URL; "" means no SMTP (messages are logged).
func ParseSMTPURL(raw string) (*SMTP, error) {
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("smtp url: %w", err)
	}
	s := &SMTP{Host: u.Hostname(), Port: u.Port(), From: u.Query().Get("from")}
	switch u.Scheme {
	case "smtp":
		if s.Port == "" {
			s.Port = "587"
		}
	case "smtps":
		s.ImplicitTLS = true
		if s.Port == "" {
			s.Port = "465"
		}
	default:
		return nil, fmt.Errorf("smtp url: scheme must be smtp or smtps, got %q", u.Scheme)
	}
	if s.Host == "" {
		return nil, errors.New("smtp url: no host")
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	if s.From == "" {
		return nil, errors.New("smtp url: add ?from=address (the sender)")
	}
	if _, err := mail.ParseAddress(s.From); err != nil {
		return nil, fmt.Errorf("smtp url: from: %w", err)
	}
	return s, nil
}

// Deps are what a Mailer needs.
type Deps struct {
	DB     *db.DB
	Clock  clock.Clock
	Queue  *jobs.Queue
	Logger *slog.Logger
	// SMTPURL is RALLY_SMTP_URL; empty logs messages instead of sending.
	SMTPURL string
}

// Mailer queues and delivers email.
type Mailer struct {
	d    Deps
	smtp *SMTP
	log  *slog.Logger
}

// sendArgs is the River job that delivers one queued message.
type sendArgs struct {
	MessageID string `json:"message_id"`
}

// Kind names the job in River.
func (sendArgs) Kind() string { return "send_mail" }

// New builds a Mailer and registers its delivery worker on d.Queue (call it
// before the queue starts).
func New(d Deps) (*Mailer, error) {
	s, err := ParseSMTPURL(d.SMTPURL)
	if err != nil {
		return nil, err
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mailer{d: d, smtp: s, log: log}
	if err := jobs.AddWorker(d.Queue, &sendWorker{m: m}); err != nil {
		return nil, fmt.Errorf("new mailer: %w", err)
	}
	return m, nil
}

// SendTx queues msg inside tx: the message and its delivery job exist only
// if tx commits.
func (m *Mailer) SendTx(ctx context.Context, tx *db.Tx, msg Message) error {
	if _, err := mail.ParseAddress(msg.To); err != nil {
		return fmt.Errorf("send mail: recipient: %w", err)
	}
	if strings.ContainsAny(msg.To+msg.Subject, "\r\n") {
		return errors.New("send mail: line break in a header")
	}
	now := m.d.Clock.Now()
	mid := id.New(now)
	if _, err := tx.Exec(ctx, `INSERT INTO mail_outbox (id, to_addr, subject, body, status, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		mid, msg.To, msg.Subject, msg.Text, StatusQueued, now.UnixMilli()); err != nil {
		return fmt.Errorf("send mail: queue: %w", err)
	}
	return m.d.Queue.InsertTx(ctx, tx, sendArgs{MessageID: mid}, &river.InsertOpts{MaxAttempts: 10})
}

const storedColumns = "id, to_addr, subject, body, status, error, created_at, sent_at"

func scanStored(r interface{ Scan(...any) error }) (Stored, error) {
	var (
		s       Stored
		created int64
		sent    sql.NullInt64
	)
	if err := r.Scan(&s.ID, &s.To, &s.Subject, &s.Body, &s.Status, &s.Error, &created, &sent); err != nil {
		return Stored{}, err
	}
	s.CreatedAt = time.UnixMilli(created).UTC()
	if sent.Valid {
		t := time.UnixMilli(sent.Int64).UTC()
		s.SentAt = &t
	}
	return s, nil
}

// List returns the newest messages of the outbox, newest first (to is an
// optional recipient filter).
func (m *Mailer) List(ctx context.Context, to string, limit int) ([]Stored, error) {
	q, args := "SELECT "+storedColumns+" FROM mail_outbox", []any{}
	if to != "" {
		q += " WHERE to_addr = ?"
		args = append(args, to)
	}
	rows, err := m.d.DB.Query(ctx, q+" ORDER BY seq DESC LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list mail: %w", err)
	}
	defer rows.Close()
	var out []Stored
	for rows.Next() {
		s, err := scanStored(rows)
		if err != nil {
			return nil, fmt.Errorf("list mail: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// deliver sends (or logs) the queued message id and records the outcome.
func (m *Mailer) deliver(ctx context.Context, mid string) error {
	s, err := scanStored(m.d.DB.QueryRow(ctx, "SELECT "+storedColumns+" FROM mail_outbox WHERE id = ?", mid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deliver mail %s: %w", mid, err)
	}
	if s.Status != StatusQueued {
		return nil
	}
	status := StatusLogged
	if m.smtp == nil {
		m.log.InfoContext(ctx, "mail (no SMTP configured; kept in mail_outbox)", "id", s.ID, "to", s.To, "subject", s.Subject, "body", s.Body)
	} else {
		if err := m.smtp.send(ctx, m.d.Clock.Now(), s); err != nil {
			_, _ = m.d.DB.Exec(ctx, "UPDATE mail_outbox SET error = ? WHERE id = ?", err.Error(), s.ID)
			return fmt.Errorf("deliver mail %s: %w", s.ID, err)
		}
		status = StatusSent
	}
	if _, err := m.d.DB.Exec(ctx, "UPDATE mail_outbox SET status = ?, error = '', sent_at = ? WHERE id = ?",
		status, m.d.Clock.Now().UnixMilli(), s.ID); err != nil {
		return fmt.Errorf("deliver mail %s: record: %w", s.ID, err)
	}
	return nil
}

// send delivers one message through the SMTP server.
func (s *SMTP) send(ctx context.Context, now time.Time, msg Stored) error {
	addr := net.JoinHostPort(s.Host, s.Port)
	dialer := &net.Dialer{Timeout: 15 * time.Second}
	var conn net.Conn
	var err error
	if s.ImplicitTLS {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: &tls.Config{ServerName: s.Host}}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("smtp dial %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(time.Minute))
	}
	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp hello: %w", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok && !s.ImplicitTLS {
		if err := c.StartTLS(&tls.Config{ServerName: s.Host}); err != nil {
			return fmt.Errorf("smtp starttls: %w", err)
		}
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, s.Host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("smtp mail from: %w", err)
	}
	if err := c.Rcpt(msg.To); err != nil {
		return fmt.Errorf("smtp rcpt: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if _, err := w.Write(compose(s.From, now, msg)); err != nil {
		return fmt.Errorf("smtp write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp data end: %w", err)
	}
	return c.Quit()
}

// compose renders msg as an RFC 5322 plain-text message with CRLF lines.
func compose(from string, now time.Time, msg Stored) []byte {
	var b strings.Builder
	host := "rally.local"
	if at := strings.LastIndex(from, "@"); at >= 0 {
		host = strings.Trim(from[at+1:], ">")
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\n", from, msg.To,
		mime.QEncoding.Encode("utf-8", msg.Subject), now.Format(time.RFC1123Z), msg.ID, host)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	for _, line := range strings.Split(strings.ReplaceAll(msg.Body, "\r\n", "\n"), "\n") {
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

// sendWorker delivers queued messages; River retries failures with back-off.
type sendWorker struct {
	river.WorkerDefaults[sendArgs]
	m *Mailer
}

func (w *sendWorker) Work(ctx context.Context, job *river.Job[sendArgs]) error {
	return w.m.deliver(ctx, job.Args.MessageID)
}
