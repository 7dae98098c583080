package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/rallyhq/rally/internal/auth"
	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/message"
)

// Upload Image limits: each image, how many, and the whole multipart body.
const (
	messageImageBytes = 5 << 20
	messageUploadBody = message.MaxUploads*messageImageBytes + 64<<10
)

// messageRoutes serve Messaging (MS1-MS5) and the designed edit and delete
// of a message. Community keys act as the member named by sender; user API
// keys (limited to their channels) and session tokens act as their owner.
func (s *Server) messageRoutes() {
	s.bodyLimits["/messages/upload-image"] = messageUploadBody
	s.handle("GET /messages", famS, partner("getMessages").orUserKeys("readOwnMessages").orUser(), s.getMessages)
	send := func(c *call) error {
		in, actor, err := messagingInput[message.SendInput](c)
		if err != nil {
			return err
		}
		if _, err := s.Messages.Send(c.r.Context(), actor, in); err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Message send successfully", nil)
	}
	sendAccess := partner("sendMessage").orUserKeys().orUser()
	s.handle("POST /messages/send", famS, sendAccess, send)
	s.handle("POST /messages", famS, sendAccess, send)
	s.handle("POST /messages/reply", famM, partner("replyMessage").orUserKeys("sendMessage").orUser(),
		messageAction(http.StatusCreated, func(message.Message) string { return "Reply sent successfully" },
			func(c *call, a message.Actor, in message.ReplyInput) (message.Message, error) {
				return s.Messages.Reply(c.r.Context(), a, in)
			}))
	s.handle("POST /messages/react", famM, partner("reactMessage").orUserKeys("sendMessage").orUser(),
		messageAction(http.StatusOK, func(r message.Reaction) string {
			if r.Reacted {
				return "Reaction added successfully"
			}
			return "Reaction removed successfully"
		}, func(c *call, a message.Actor, in message.ReactInput) (message.Reaction, error) {
			return s.Messages.React(c.r.Context(), a, in)
		}))
	s.handle("POST /messages/upload-image", famS, sendAccess, s.uploadMessageImages)
	s.handle("PUT /messages/{messageId}", famS, sendAccess, messageAction(http.StatusOK,
		func(message.Message) string { return "Message updated successfully" },
		func(c *call, a message.Actor, in message.EditInput) (message.Message, error) {
			return s.Messages.Edit(c.r.Context(), a, c.r.PathValue("messageId"), in)
		}))
	s.handle("DELETE /messages/{messageId}", famS, sendAccess, func(c *call) error {
		out, err := s.Messages.Delete(c.r.Context(), c.messagingActor(c.r.URL.Query().Get("sender")), c.r.PathValue("messageId"))
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Message deleted successfully", out)
	})
}

// messagingInput decodes a messaging body into T and the actor: the sender
// it names acts for a community key.
func messagingInput[T any](c *call) (T, message.Actor, error) {
	var (
		in  T
		who struct {
			Sender string `json:"sender"`
		}
	)
	raw, err := readBody(c.r)
	if err == nil {
		err = decodeBody(raw, &who)
	}
	if err == nil {
		err = decodeBody(raw, &in)
	}
	return in, c.messagingActor(who.Sender), err
}

// messageAction serves a messaging write: the body decoded into T, do's
// result answered with status and the message msg gives for it.
func messageAction[T, R any](status int, msg func(R) string, do func(*call, message.Actor, T) (R, error)) func(*call) error {
	return func(c *call) error {
		in, actor, err := messagingInput[T](c)
		if err != nil {
			return err
		}
		out, err := do(c, actor, in)
		if err != nil {
			return err
		}
		return c.ok(status, msg(out), out)
	}
}

// messagingActor is who a messaging call acts as: the session's or user
// key's owner (the key's channel limit applies), or for a community key the
// member named by sender.
func (c *call) messagingActor(sender string) message.Actor {
	switch {
	case c.session != nil:
		return message.Actor{CommunityID: c.session.CommunityID, UserID: c.session.UserID}
	case c.key.Kind == auth.KindUser:
		return message.Actor{CommunityID: c.key.CommunityID, UserID: c.key.UserID, Channels: c.key.ChannelIDs}
	default:
		return message.Actor{CommunityID: c.key.CommunityID, Sender: sender, Partner: true}
	}
}

// getMessages serves Get Messages (MS1): filters user_id, channel_id, email
// and forum_topic_id, page size count, cursors before and after.
func (s *Server) getMessages(c *call) error {
	q := c.r.URL.Query()
	mq := message.Query{ChannelID: q.Get("channel_id"), UserID: q.Get("user_id"), Email: q.Get("email"),
		ForumTopicID: q.Get("forum_topic_id"), Before: q.Get("before"), After: q.Get("after")}
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			var vd errs.Validator
			vd.Add("count", "must be a whole number from 1 to %d", message.MaxCount)
			return vd.Err()
		}
		mq.Count = n
	}
	page, err := s.Messages.List(c.r.Context(), c.messagingActor(q.Get("sender")), mq)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "messages fetched successfully", page)
}

// uploadMessageImages serves Upload Image (MS5): every multipart part named
// images (image and file are accepted too) is sniffed, size-limited and
// stored; the answer is the documented bare array of file objects.
func (s *Server) uploadMessageImages(c *call) error {
	mr, err := c.r.MultipartReader()
	if err != nil {
		var v errs.Validator
		v.Add("images", "must be sent as multipart/form-data")
		return v.Err()
	}
	var (
		files  []message.Upload
		v      errs.Validator
		sender string
		parts  int
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return multipartError(err, "valid multipart/form-data")
		}
		switch part.FormName() {
		case "images", "image", "file":
			b, err := io.ReadAll(io.LimitReader(part, messageImageBytes+1))
			if err != nil {
				return multipartError(err, "valid multipart/form-data")
			}
			field := "images[" + strconv.Itoa(parts) + "]"
			parts++
			switch ct := sniffImage(b); {
			case len(b) > messageImageBytes:
				return errs.New(errs.TooLarge, "An image is larger than 5 MiB.")
			case ct == "":
				v.Add(field, "must be a PNG, JPEG, WebP or GIF image")
			default:
				files = append(files, message.Upload{Name: part.FileName(), Type: ct, Data: b})
			}
		case "sender":
			b, err := io.ReadAll(io.LimitReader(part, formValueBytes))
			if err != nil {
				return multipartError(err, "valid multipart/form-data")
			}
			sender = strings.TrimSpace(string(b))
		default:
			if _, err := io.Copy(io.Discard, part); err != nil {
				return multipartError(err, "valid multipart/form-data")
			}
		}
	}
	v.Check(parts > 0, "images", "is required: one or more image files")
	v.Check(parts <= message.MaxUploads, "images", "may hold at most %d images", message.MaxUploads)
	if err := v.Err(); err != nil {
		return err
	}
	base := baseURL(c.r)
	out, err := s.Messages.Upload(c.r.Context(), c.messagingActor(sender), files, func(key string) string {
		return base + "/v1/files/" + key
	})
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}
