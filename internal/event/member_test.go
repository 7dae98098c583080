package event_test

import (
	"testing"

	"github.com/rallyhq/rally/internal/event"
)

func TestMemberOfReadsTheFieldsInOrder(t *testing.T) {
	for _, tc := range []struct{ payload, want string }{
		{`{"userId":" u1 ","text":"hi","user":{"_id":"u9"}}`, "u1"},
		{`{"userId":"  ","userID":"u2"}`, "u2"},
		{`{"userId":5,"user_id":"u3"}`, "u3"},
		{`{"message":{"userId":"nested"},"user":{"_id":" u4 ","name":"x"}}`, "u4"},
		{`{"user":"u5"}`, ""},
		{`{"user":"u5","userId":"u6"}`, "u6"},
		{`{"user":{"_id":7}}`, ""},
		{`{}`, ""},
		{`[1,2]`, ""},
		{`not json`, ""},
		{``, ""},
	} {
		if got := event.MemberOf([]byte(tc.payload)); got != tc.want {
			t.Errorf("MemberOf(%s) = %q, want %q", tc.payload, got, tc.want)
		}
	}
}
