package auth

import "testing"

func TestPasswordHashRoundTrip(t *testing.T) {
	h, err := HashPassword("StrongPass1!")
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyPassword(h, "StrongPass1!") {
		t.Fatal("right password refused")
	}
	if VerifyPassword(h, "StrongPass2!") || VerifyPassword("", "StrongPass1!") || VerifyPassword("$argon2id$x", "a") {
		t.Fatal("wrong password or malformed hash accepted")
	}
	h2, _ := HashPassword("StrongPass1!")
	if h == h2 {
		t.Fatal("same salt twice")
	}
}

func TestPasswordStrength(t *testing.T) {
	for pw, ok := range map[string]bool{"StrongPass1!": true, "short1": false, "onlyletters": false, "12345678": false, "abc12345": true} {
		if got := CheckPasswordStrength(pw) == ""; got != ok {
			t.Errorf("%q: strong=%v, want %v", pw, got, ok)
		}
	}
}

// BenchmarkVerifyPassword measures one argon2id check, the bound on
// password logins per second per core.
func BenchmarkVerifyPassword(b *testing.B) {
	hash, err := HashPassword("correct horse 9")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !VerifyPassword(hash, "correct horse 9") {
			b.Fatal("no match")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
}
