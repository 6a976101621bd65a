package sqlite

import (
	"context"
	"fmt"
)

// LimitPages caps the database at n pages (PRAGMA max_page_count) and
// returns the cap SQLite kept: never below the pages in use, so a cap of 1
// makes the next write that needs one more page fail with SQLITE_FULL,
// exactly as a full disk does. n = 0 only reads the cap. The setting lives
// on the connection, and the writer's single connection is the only one
// that writes (readers are query_only); it stays open for the store's life.
func LimitPages(ctx context.Context, s *Store, n int64) (int64, error) {
	var got int64
	if err := s.write.QueryRowContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", n)).Scan(&got); err != nil {
		return 0, fmt.Errorf("PRAGMA max_page_count = %d: %w", n, err)
	}
	return got, nil
}
