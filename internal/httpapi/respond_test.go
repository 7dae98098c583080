package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestSuccessRawMatchesEncoder checks that the modern envelope written
// around pre-encoded data is byte for byte what encoding/json writes for the
// same answer (data encoded by encoding/json, as the caches hold it).
func TestSuccessRawMatchesEncoder(t *testing.T) {
	data, err := json.Marshal(map[string]any{"_id": "a1", "name": "Bench <&> \"Club\" \u2028", "domain": nil, "n": []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		status  int
		message string
	}{
		{200, "Read community success."},
		{201, ""},
		{200, `Quote " and backslash \ and <tag> & more`},
		{200, "Ünïcode \u2028 line separator and \t tab"},
		{204, "plain"},
	} {
		want, err := json.Marshal(bodyM{Meta: metaM{Status: "success", StatusCode: tc.status}, Message: tc.message, Data: json.RawMessage(data)})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendSuccessM(nil, tc.status, tc.message, json.RawMessage(data)); string(got) != string(want) {
			t.Errorf("message %q:\n got %s\nwant %s", tc.message, got, want)
		}
		rec := httptest.NewRecorder()
		success(rec, famM, tc.status, tc.message, json.RawMessage(data), nil)
		if rec.Body.String() != string(want) || rec.Header().Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Errorf("success(%q) wrote %s (Content-Length %s), want %s", tc.message, rec.Body, rec.Header().Get("Content-Length"), want)
		}
	}
}
