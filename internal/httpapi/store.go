package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"

	"github.com/rallyhq/rally/internal/errs"
	"github.com/rallyhq/rally/internal/store"
)

// storeRoutes serve the partner store API: configuration (ST1, ST2),
// categories (CT1-CT5) and products (PR1-PR7), all with the store
// permission.
func (s *Server) storeRoutes() {
	st := s.Store
	key := partner("store")
	s.handle("GET /stores", famM, key, func(c *call) error {
		q, err := storeQuery(c, false)
		if err != nil {
			return err
		}
		return readScoped(c, "Read store config success.", q, func(community string) (store.Config, error) {
			return st.Config(c.r.Context(), community, q)
		})
	})
	s.handle("PUT /stores", famM, key, updateOwn("Update store config success.", st.UpdateConfig))

	s.handle("GET /categories", famM, key, listScoped("Read categories success.", st.Categories))
	s.handle("POST /categories", famM, key, createOwn("Create category success.", st.CreateCategory))
	s.handle("GET /categories/{categoryId}", famM, key, readByID("categoryId", "Read category success.", st.Category))
	s.handle("PUT /categories/{categoryId}", famM, key, updateByID("categoryId", "Update category success.", st.UpdateCategory))
	s.handle("DELETE /categories/{categoryId}", famM, key, deleteByID("categoryId", "Delete category success.", st.DeleteCategory))

	s.handle("GET /products", famM, key, listScoped("Read products success.", st.Products))
	s.handle("POST /products", famM, key, createOwn("Create product success.", st.CreateProduct))
	s.handle("POST /products/bulk", famM, key, bulkProducts(false, http.StatusCreated, "Create products success.", st.CreateProducts))
	s.handle("PUT /products/bulk", famM, key, bulkProducts(true, http.StatusOK, "Update products success.", st.UpdateProducts))
	s.handle("GET /products/{productId}", famM, key, readByID("productId", "Read product success.", st.Product))
	s.handle("PUT /products/{productId}", famM, key, updateByID("productId", "Update product success.", st.UpdateProduct))
	s.handle("DELETE /products/{productId}", famM, key, deleteByID("productId", "Delete product success.", st.DeleteProduct))
}

// storeQuery reads the partner list conventions from the query string:
// skip, limit (when list), sort, fields, search, filter, lang, userID. The
// docs' own sample sends skip=undefined; it means the default.
func storeQuery(c *call, list bool) (store.Query, error) {
	v := c.r.URL.Query()
	q := store.Query{Sort: v.Get("sort"), Fields: v.Get("fields"), Search: v.Get("search"), Filter: v.Get("filter"),
		Lang: v.Get("lang"), UserID: v.Get("userID")}
	if !list {
		return q, nil
	}
	r := c.r
	if v.Get("skip") == "undefined" {
		v.Del("skip")
		u := *r.URL
		u.RawQuery = v.Encode()
		r = r.Clone(r.Context())
		r.URL = &u
	}
	var err error
	q.Skip, q.Limit, err = offsetPage(r)
	return q, err
}

// project keeps only fields (and _id) of v's JSON object; nil fields keep
// everything.
func project(v any, fields []string) (any, error) {
	if fields == nil {
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("project: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("project: %w", err)
	}
	for k := range m {
		if k != "_id" && !slices.Contains(fields, k) {
			delete(m, k)
		}
	}
	return m, nil
}

// readScoped answers a read of the caller's community with the projection
// q asks for.
func readScoped[T any](c *call, message string, q store.Query, get func(community string) (T, error)) error {
	community, err := c.community()
	if err != nil {
		return err
	}
	v, err := get(community)
	if err != nil {
		return err
	}
	data, err := project(v, q.FieldList())
	if err != nil {
		return err
	}
	return c.ok(http.StatusOK, message, data)
}

// listScoped serves an offset-paged list of the caller's community.
func listScoped[T any](message string, list func(ctx context.Context, community string, q store.Query) ([]T, int, error)) func(*call) error {
	return func(c *call) error {
		q, err := storeQuery(c, true)
		if err != nil {
			return err
		}
		community, err := c.community()
		if err != nil {
			return err
		}
		items, total, err := list(c.r.Context(), community, q)
		if err != nil {
			return err
		}
		out := make([]any, 0, len(items))
		for _, it := range items {
			p, err := project(it, q.FieldList())
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return c.list(message, out, Page{Skip: &q.Skip, Limit: &q.Limit, Total: &total})
	}
}

// readByID serves a read of one record of the caller's community.
func readByID[T any](param, message string, get func(ctx context.Context, community, id string, q store.Query) (T, error)) func(*call) error {
	return func(c *call) error {
		q, err := storeQuery(c, false)
		if err != nil {
			return err
		}
		return readScoped(c, message, q, func(community string) (T, error) {
			return get(c.r.Context(), community, c.r.PathValue(param), q)
		})
	}
}

// writeOwn decodes a JSON body and applies it in the caller's community.
func writeOwn[I, T any](c *call, status int, message string, apply func(community string, in I) (T, error)) error {
	community, err := c.community()
	if err != nil {
		return err
	}
	var in I
	if err := c.decode(&in); err != nil {
		return err
	}
	v, err := apply(community, in)
	if err != nil {
		return err
	}
	return c.ok(status, message, v)
}

// createOwn serves a JSON create in the caller's community (201).
func createOwn[I, T any](message string, create func(ctx context.Context, community string, in I) (T, error)) func(*call) error {
	return func(c *call) error {
		return writeOwn(c, http.StatusCreated, message, func(community string, in I) (T, error) {
			return create(c.r.Context(), community, in)
		})
	}
}

// updateByID serves a JSON update of one record of the caller's community.
func updateByID[I, T any](param, message string, update func(ctx context.Context, community, id string, in I) (T, error)) func(*call) error {
	return func(c *call) error {
		return writeOwn(c, http.StatusOK, message, func(community string, in I) (T, error) {
			return update(c.r.Context(), community, c.r.PathValue(param), in)
		})
	}
}

// deleteByID serves a delete of one record of the caller's community; the
// answer carries the record as it was.
func deleteByID[T any](param, message string, del func(ctx context.Context, community, id string) (T, error)) func(*call) error {
	return func(c *call) error {
		community, err := c.community()
		if err != nil {
			return err
		}
		v, err := del(c.r.Context(), community, c.r.PathValue(param))
		if err != nil {
			return err
		}
		return c.ok(http.StatusOK, message, v)
	}
}

// csvTypes are the MIME types a bulk CSV upload may carry.
var csvTypes = []string{"text/csv", "application/csv", "application/vnd.ms-excel"}

// bulkProducts serves a bulk write: the body is a raw JSON array or a
// multipart CSV in the file field; meta.created or meta.updated counts the
// products written.
func bulkProducts(update bool, status int, message string,
	apply func(ctx context.Context, community string, items []store.BulkItem) ([]store.Product, error)) func(*call) error {
	return func(c *call) error {
		community, err := c.community()
		if err != nil {
			return err
		}
		var items []store.BulkItem
		mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
		if mt == "multipart/form-data" {
			items, err = bulkCSV(c, update)
		} else {
			var raw []byte
			if raw, err = io.ReadAll(c.r.Body); err != nil {
				return bodyError(err)
			}
			items, err = store.ParseProductsJSON(raw, update)
		}
		if err != nil {
			return err
		}
		list, err := apply(c.r.Context(), community, items)
		if err != nil {
			return err
		}
		n := len(list)
		page := &Page{Created: &n}
		if update {
			page = &Page{Updated: &n}
		}
		success(c.w, c.fam, status, message, list, page)
		return nil
	}
}

// bulkCSV reads the CSV upload of a multipart bulk request.
func bulkCSV(c *call, update bool) ([]store.BulkItem, error) {
	var v errs.Validator
	if err := c.r.ParseMultipartForm(c.s.MaxBodyBytes); err != nil {
		return nil, multipartError(err, "a multipart/form-data form")
	}
	f, hdr, err := c.r.FormFile("file")
	if err != nil {
		v.Add("file", "is required: upload the CSV in the file field")
		return nil, v.Err()
	}
	defer f.Close()
	if mt, _, _ := mime.ParseMediaType(hdr.Header.Get("Content-Type")); !slices.Contains(csvTypes, mt) {
		v.Add("file", "must be a CSV file (text/csv, application/csv or application/vnd.ms-excel)")
		return nil, v.Err()
	}
	return store.ParseProductsCSV(f, update)
}
