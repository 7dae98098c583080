package httpapi

import (
	"net/http"

	"github.com/rallyhq/rally/internal/channel"
)

// messagingRoutes serve channels and messages.
func (s *Server) messagingRoutes() {
	s.channelRoutes()
	s.messageRoutes()
}

// channelRoutes serve channels (CH2-CH7, legacy family; CH1 is the iframe
// channelType) and the designed forum-topic routes.
func (s *Server) channelRoutes() {
	read := partner("getChannels").legacy()
	manage := partner("manageChannels").legacy()
	list := offsetList("Channels fetched successfully", func(c *call, communityID string, skip, limit int) ([]channel.Channel, int, error) {
		q := c.r.URL.Query()
		cq := channel.Query{Type: q.Get("type"), Skip: skip, Limit: limit}
		if q.Has("category") {
			cat := q.Get("category")
			cq.Category = &cat
		}
		return s.Channels.List(c.r.Context(), communityID, cq)
	})
	s.handle("GET /communities/{communityId}/channels", famL, read, list)
	s.handle("GET /channels", famL, read, list)
	s.handle("POST /channels", famL, manage, inCommunity(http.StatusOK, "Channel has been created successfully",
		func(c *call, communityID string) (channel.Channel, error) {
			var in channel.Input
			if err := c.decode(&in); err != nil {
				return channel.Channel{}, err
			}
			return s.Channels.Create(c.r.Context(), communityID, in)
		}))
	s.handle("PUT /channels/{channelId}", famL, manage, inCommunity(http.StatusOK, "Channel has been updated successfully",
		func(c *call, communityID string) (channel.Channel, error) {
			var in channel.Input
			if err := c.decode(&in); err != nil {
				return channel.Channel{}, err
			}
			return s.Channels.Update(c.r.Context(), communityID, c.r.PathValue("channelId"), in)
		}))
	s.handle("DELETE /channels/{channelId}", famL, manage, inCommunity(http.StatusOK, "Channel has been deleted successfully",
		func(c *call, communityID string) (channel.Channel, error) {
			return s.Channels.Delete(c.r.Context(), communityID, c.r.PathValue("channelId"))
		}))
	s.handle("POST /channels/{channelId}/topics", famL, manage, inCommunity(http.StatusCreated, "Topic has been created successfully",
		func(c *call, communityID string) (channel.Topic, error) {
			var in channel.TopicInput
			if err := c.decode(&in); err != nil {
				return channel.Topic{}, err
			}
			return s.Channels.CreateTopic(c.r.Context(), communityID, c.r.PathValue("channelId"), in)
		}))
	s.handle("GET /channels/{channelId}/topics", famL, read, offsetList("Topics fetched successfully",
		func(c *call, communityID string, skip, limit int) ([]channel.Topic, int, error) {
			return s.Channels.Topics(c.r.Context(), communityID, c.r.PathValue("channelId"), skip, limit)
		}))
}

// offsetList serves an offset-paged list (skip, limit) of the caller's
// community: fn's page and total are answered with message.
func offsetList[T any](message string, fn func(c *call, communityID string, skip, limit int) ([]T, int, error)) func(*call) error {
	return func(c *call) error {
		communityID, err := c.community()
		if err != nil {
			return err
		}
		skip, limit, err := offsetPage(c.r)
		if err != nil {
			return err
		}
		out, total, err := fn(c, communityID, skip, limit)
		if err != nil {
			return err
		}
		return c.list(message, out, Page{Skip: &skip, Limit: &limit, Total: &total})
	}
}
