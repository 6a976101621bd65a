package local

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// exitTokens are the secrets a step's wrapper signs its exit file with:
// it writes ok after exit code 0 and fail after any other. They reach the
// wrapper only through its gate and are never written down: step.json
// holds their hashes. A step that finds its exit file and writes a code of
// its own therefore cannot write the token that makes the provider believe
// it, and the token of a real failure, which a step's leftover children
// may read once the wrapper wrote it, is no use for claiming a success.
type exitTokens struct {
	ok, fail string
}

func newExitTokens() exitTokens {
	// Text holds 128 random bits in base32: no spaces, one word each on
	// the gate line.
	return exitTokens{ok: rand.Text(), fail: rand.Text()}
}

// gateLine opens the start gate and hands the wrapper its tokens.
func (t exitTokens) gateLine() string {
	return "go " + t.ok + " " + t.fail + "\n"
}

// record puts the tokens' hashes into the step's record.
func (t exitTokens) record(r *procRecord) {
	r.OKHash, r.FailHash = tokenHash(t.ok), tokenHash(t.fail)
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// exitRecord is what readExit makes of a step's exit file.
type exitRecord struct {
	code int
	// at is the file's time: when the wrapper wrote it.
	at time.Time
	// ok says the file holds an exit code and the token of that outcome,
	// so the step's wrapper wrote it and the code is the step's.
	ok bool
	// forged says there is a file, but not one the wrapper wrote: the
	// step (or something else) put it there, and its code means nothing.
	forged bool
}

// readExit reads the exit file and checks it against the token hashes in
// pr. No file is neither ok nor forged.
func readExit(dir string, pr procRecord) (exitRecord, error) {
	path := filepath.Join(dir, "exit")
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return exitRecord{}, nil
	}
	if err != nil {
		return exitRecord{}, err
	}
	r := exitRecord{at: fi.ModTime().UTC()}
	if !fi.Mode().IsRegular() {
		// The wrapper writes a regular file; a directory or a link
		// there is someone else's.
		r.forged = true
		return r, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	r.code, r.ok = pr.checkExit(string(b))
	r.forged = !r.ok
	return r, nil
}

// checkExit parses an exit file, "<code> <token>\n", and reports whether
// its token is the one issued for its outcome. A record without hashes
// (a hand-made one, or one from a version that wrote bare codes) believes
// no exit file at all.
func (r procRecord) checkExit(text string) (int, bool) {
	f := strings.Fields(text)
	if len(f) != 2 {
		return 0, false
	}
	code, err := strconv.Atoi(f[0])
	if err != nil || code < 0 {
		return 0, false
	}
	want := r.FailHash
	if code == 0 {
		want = r.OKHash
	}
	return code, want != "" && tokenHash(f[1]) == want
}
