package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/clock"
	"github.com/berthhq/berth/internal/config"
	"github.com/berthhq/berth/internal/server"
)

// berth serve on a store another server holds exits 1 with a message that
// says so and names the store; the other server goes on serving.
func TestServeRefusesAStoreInUse(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "berth.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
store: sqlite://%[1]s/berth.db
pools:
  - {name: p, provider: local, slots: 1, local: {dir: %[1]s/local}}
`, filepath.ToSlash(dir))
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	first, err := server.New(context.Background(), cfg, server.Options{Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := first.Stop(); err != nil {
			t.Error(err)
		}
	})

	// The deadline only bounds a serve that wrongly starts: it would run
	// until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	e := &env{
		stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
		getenv: func(string) string { return "" }, clock: clock.Real{},
	}
	code := e.main(ctx, []string{"serve", "--config", cfgPath})
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	db := filepath.Join(dir, "berth.db")
	if code != 1 || !strings.HasPrefix(last, "berth: ") || !strings.Contains(last, "another berth server holds the store "+db) {
		t.Fatalf("berth serve on a store in use: exit %d, last line of stderr %q; want 1 and a message that another server holds %s", code, last, db)
	}
	if err := client.New("http://"+first.Addr(), "", nil).Readyz(context.Background()); err != nil {
		t.Errorf("the first server after the second was refused: %v", err)
	}
}
