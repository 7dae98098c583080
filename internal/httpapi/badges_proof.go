package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/rallyhq/rally/internal/badge"
	"github.com/rallyhq/rally/internal/errs"
)

// Badge application limits: a proof text or URL field of a multipart
// application, and the whole multipart body (the proof file, the fields and
// the framing).
const (
	proofFieldBytes = 8 << 10
	proofBodyBytes  = badge.MaxProofFileBytes + 64<<10
)

// applyInput reads a badge application: a JSON body, or a multipart form
// with proofText and proofUrl fields and the proof file in proof (or file).
// The file's type is told from its content; every offending field is
// named; a file over the limit is TooLarge.
func (s *Server) applyInput(c *call) (badge.ApplyInput, error) {
	var in badge.ApplyInput
	if mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		// Only uploads get the larger body limit.
		c.r.Body = http.MaxBytesReader(c.w, c.r.Body, s.MaxBodyBytes)
		err := c.decode(&in)
		return in, err
	}
	mr, err := c.r.MultipartReader()
	if err != nil {
		return in, multipartError(err, "valid multipart/form-data")
	}
	var (
		v     errs.Validator
		files int
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return in, multipartError(err, "valid multipart/form-data")
		}
		switch name := part.FormName(); name {
		case "proofText", "proofUrl":
			b, err := io.ReadAll(io.LimitReader(part, proofFieldBytes+1))
			if err != nil {
				return in, multipartError(err, "valid multipart/form-data")
			}
			switch {
			case len(b) > proofFieldBytes:
				v.Add(name, "must be at most %d bytes", proofFieldBytes)
			case name == "proofText":
				in.ProofText = string(b)
			default:
				in.ProofURL = string(b)
			}
		case "proof", "file":
			files++
			b, err := io.ReadAll(io.LimitReader(part, badge.MaxProofFileBytes+1))
			if err != nil {
				return in, multipartError(err, "valid multipart/form-data")
			}
			// The service checks size and type; the type comes from the
			// bytes, never from the part's header.
			in.ProofFile = &badge.ProofUpload{Name: part.FileName(), Type: sniffProof(b), Data: b}
		default:
			if _, err := io.Copy(io.Discard, part); err != nil {
				return in, multipartError(err, "valid multipart/form-data")
			}
		}
	}
	v.Check(files <= 1, "proof", "must be one file")
	return in, v.Err()
}

// sniffProof names the type of a proof file from its content: an image the
// blob store keeps, or a PDF ("" for anything else).
func sniffProof(b []byte) string {
	if ct := sniffImage(b); ct != "" {
		return ct
	}
	if ct := http.DetectContentType(b); ct == "application/pdf" {
		return ct
	}
	return ""
}
