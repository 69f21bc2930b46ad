//go:build !cgo

package query

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNoCgo is what every call returns in a binary built without cgo:
// DuckDB is a C++ library.
var ErrNoCgo = errors.New("this vumi was built without cgo (CGO_ENABLED=0), so it has no DuckDB: build it with CGO_ENABLED=1 and a C compiler (gcc) for 'vumi query' and 'vumi export'")

// DB is an open archive (unavailable without cgo).
type DB struct{}

// Open returns ErrNoCgo.
func Open(context.Context, Options) (*DB, error) { return nil, ErrNoCgo }

// Close does nothing.
func (d *DB) Close() error { return nil }

// Run returns ErrNoCgo.
func (d *DB) Run(context.Context, string, string, io.Writer, Progress, time.Duration) (int, error) {
	return 0, ErrNoCgo
}

// Export returns ErrNoCgo.
func (d *DB) Export(context.Context, ExportOptions, string) (int64, error) { return 0, ErrNoCgo }

// ExportTo returns ErrNoCgo.
func (d *DB) ExportTo(context.Context, ExportOptions, io.Writer) (int64, error) { return 0, ErrNoCgo }
