package store

import (
	"context"
	"fmt"
)

// Schema is what Migrate needs from a database: which version its schema is
// at, and a way to apply one migration. Each store keeps its version its own
// way (SQLite in PRAGMA user_version, PostgreSQL in a table under an
// advisory lock).
type Schema interface {
	// Version returns the number of migrations applied, 0 for a new
	// database.
	Version(ctx context.Context) (int, error)
	// Apply runs the statements of migration v (1-based) and records v as
	// the schema version in one transaction, so a crash leaves the schema
	// at a version boundary.
	Apply(ctx context.Context, v int, statements string) error
}

// Migrate brings s to the last of migrations, applying each missing one in
// order, and refuses a database written by a newer errnowatch. Migrations
// are append-only: a released one is never edited.
func Migrate(ctx context.Context, s Schema, migrations []string) error {
	version, err := s.Version(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this errnowatch knows (%d): upgrade errnowatch", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if err := s.Apply(ctx, v+1, migrations[v]); err != nil {
			return err
		}
	}
	return nil
}

// Step names the part of applying migration v that failed, the way both
// stores report it: "begin", "apply", "record" or "commit".
func Step(step string, v int, err error) error {
	return fmt.Errorf("%s migration %d: %w", step, v, err)
}
