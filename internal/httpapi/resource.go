package httpapi

import (
	"context"
	"net/http"
)

// resource is a community-scoped definition the partner API creates (POST
// on the collection), updates (PUT), reads (GET) and deletes (DELETE) by the
// id in the path value param: streaks, milestones, referral programs. Its
// answers say "<verb> <noun> success.", reads with readVerb ("Get" or
// "Read", as the resource's siblings say it).
type resource[In, Out any] struct {
	param, noun, readVerb string
	create                func(ctx context.Context, communityID string, in In) (Out, error)
	update                func(ctx context.Context, communityID, id string, in In) (Out, error)
	get                   func(ctx context.Context, communityID, id string) (Out, error)
	remove                func(ctx context.Context, communityID, id string) error
}

// routes registers the resource's item routes under base (the collection's
// path): POST base, and GET/PUT/DELETE base/{param}, reads with read access
// and writes with write access.
func (res resource[In, Out]) routes(s *Server, base string, read, write access) {
	item := base + "/{" + res.param + "}"
	s.handle("POST "+base, famM, write, res.save)
	s.handle("GET "+item, famM, read, res.read)
	s.handle("PUT "+item, famM, write, res.save)
	s.handle("DELETE "+item, famM, write, res.del)
}

// save creates the resource (no id in the path) or updates the path's one.
func (res resource[In, Out]) save(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	var in In
	if err := c.decode(&in); err != nil {
		return err
	}
	id := c.r.PathValue(res.param)
	if id == "" {
		v, err := res.create(c.r.Context(), communityID, in)
		if err != nil {
			return err
		}
		return c.ok(http.StatusCreated, "Create "+res.noun+" success.", v)
	}
	v, err := res.update(c.r.Context(), communityID, id, in)
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Update "+res.noun+" success.", v)
}

// read answers the path's resource.
func (res resource[In, Out]) read(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	v, err := res.get(c.r.Context(), communityID, c.r.PathValue(res.param))
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, res.readVerb+" "+res.noun+" success.", v)
}

// del deletes the path's resource and answers its id.
func (res resource[In, Out]) del(c *call) error {
	communityID, err := c.community()
	if err != nil {
		return err
	}
	id := c.r.PathValue(res.param)
	if err := res.remove(c.r.Context(), communityID, id); err != nil {
		return err
	}
	return c.ok(http.StatusOK, "Delete "+res.noun+" success.", map[string]string{"_id": id})
}
