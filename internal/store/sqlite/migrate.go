package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// migrationFS holds the schema as numbered SQL files, applied in order. A
// released file is never edited: a change to the schema is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations reads the embedded files and checks that they are numbered
// 1, 2, 3... with no gap or repeat.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", e.Name())
		}
		text, err := fs.ReadFile(migrationFS, "migrations/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(text)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate applies the migrations the database has not seen, each in its own
// transaction together with its schema_migrations row, so a crash leaves
// the schema at one version or the next, never between. Transactions begin
// IMMEDIATE, so two processes opening the same new file cannot both apply
// a migration.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	// applied_at is a note for people reading the database, so it comes
	// from SQLite's clock rather than the injected one.
	_, err = s.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
	)`)
	if err != nil {
		return s.fail(ctx, "create schema_migrations", err)
	}
	for _, m := range ms {
		err := s.writeTx(ctx, "apply migration "+m.name, func(tx *sql.Tx) error {
			var latest int
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&latest); err != nil {
				return s.fail(ctx, "read schema version", err)
			}
			if latest > len(ms) {
				return fmt.Errorf("sqlite: database schema version %d is newer than this build knows (%d): run a newer berth", latest, len(ms))
			}
			if latest >= m.version {
				return errSkip
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return s.fail(ctx, "apply migration "+m.name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.version, m.name); err != nil {
				return s.fail(ctx, "record migration "+m.name, err)
			}
			s.log.Info("applied migration", "version", m.version, "name", m.name)
			return nil
		})
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errSkip rolls back a migration transaction that found nothing to do.
var errSkip = errors.New("migration already applied")
