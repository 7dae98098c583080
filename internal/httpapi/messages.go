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
		var in struct {
			message.SendInput
			Sender string `json:"sender"`
		}
		if err := c.decode(&in); err != nil {
			return err
		}
		if _, err := s.Messages.Send(c.r.Context(), c.messagingActor(in.Sender), in.SendInput); err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Message send successfully", nil)
	}
	sendAccess := partner("sendMessage").orUserKeys().orUser()
	s.handle("POST /messages/send", famS, sendAccess, send)
	s.handle("POST /messages", famS, sendAccess, send)
	s.handle("POST /messages/reply", famM, partner("replyMessage").orUserKeys("sendMessage").orUser(), func(c *call) error {
		var in struct {
			message.ReplyInput
			Sender string `json:"sender"`
		}
		if err := c.decode(&in); err != nil {
			return err
		}
		out, err := s.Messages.Reply(c.r.Context(), c.messagingActor(in.Sender), in.ReplyInput)
		if err != nil {
			return err
		}
		return c.ok(http.StatusCreated, "Reply sent successfully", out)
	})
	s.handle("POST /messages/react", famM, partner("reactMessage").orUserKeys("sendMessage").orUser(), func(c *call) error {
		var in struct {
			message.ReactInput
			Sender string `json:"sender"`
		}
		if err := c.decode(&in); err != nil {
			return err
		}
		out, err := s.Messages.React(c.r.Context(), c.messagingActor(in.Sender), in.ReactInput)
		if err != nil {
			return err
		}
		msg := "Reaction removed successfully"
		if out.Reacted {
			msg = "Reaction added successfully"
		}
		return c.ok(http.StatusOK, msg, out)
	})
	s.handle("POST /messages/upload-image", famS, sendAccess, s.uploadMessageImages)
	s.handle("PUT /messages/{messageId}", famS, sendAccess, func(c *call) error {
		var in struct {
			message.EditInput
			Sender string `json:"sender"`
		}
		if err := c.decode(&in); err != nil {
			return err
		}
		out, err := s.Messages.Edit(c.r.Context(), c.messagingActor(in.Sender), c.r.PathValue("messageId"), in.EditInput)
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Message updated successfully", out)
	})
	s.handle("DELETE /messages/{messageId}", famS, sendAccess, func(c *call) error {
		out, err := s.Messages.Delete(c.r.Context(), c.messagingActor(c.r.URL.Query().Get("sender")), c.r.PathValue("messageId"))
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, "Message deleted successfully", out)
	})
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
