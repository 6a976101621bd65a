package berth

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
)

// NewID returns a new id with the given prefix ("job", "cl"). Ids sort by
// creation time, which keeps listings and logs readable.
func NewID(prefix string, now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	ts := uint64(now.UnixMilli())
	var t [6]byte
	for i := 5; i >= 0; i-- {
		t[i] = byte(ts)
		ts >>= 8
	}
	return prefix + "-" + hex.EncodeToString(t[:]) + hex.EncodeToString(b[:])
}

// ValidID reports whether s could be an id made by NewID: short and made
// only of safe characters, so it can name a file or a provider tag.
func ValidID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
	}) < 0
}
