// Package id makes the 24-hex ObjectIds every Rally record is known by:
// 4 bytes of Unix time, 5 random bytes fixed per process, 3 bytes of counter,
// the same layout MongoDB uses, so ids sort roughly by creation time.
package id

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"time"
)

// processUnique and counter are the only process-wide state: an ObjectId's
// uniqueness rests on them being shared by every generator in the process.
var (
	processUnique = func() [5]byte {
		var b [5]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic("id: no randomness: " + err.Error())
		}
		return b
	}()
	counter = func() *atomic.Uint32 {
		var c atomic.Uint32
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Store(binary.BigEndian.Uint32(b[:]))
		return &c
	}()
)

// New returns a fresh ObjectId for the given time.
func New(t time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:4], uint32(t.Unix()))
	copy(b[4:9], processUnique[:])
	c := counter.Add(1)
	b[9], b[10], b[11] = byte(c>>16), byte(c>>8), byte(c)
	return hex.EncodeToString(b[:])
}

// Valid reports whether s is a 24-character lowercase or uppercase hex ObjectId.
func Valid(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
