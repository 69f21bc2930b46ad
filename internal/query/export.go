package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Export formats.
const (
	ExportCSV     = "csv"
	ExportJSON    = "json"
	ExportParquet = "parquet"
)

// ExportOptions select an account's messages.
type ExportOptions struct {
	// Account is required.
	Account string
	// From and To are UTC dates, inclusive (the archive's date: the
	// day of the message's timestamp). Zero means unbounded.
	From, To time.Time
	// Format is csv, json (JSON lines) or parquet.
	Format string
}

// ExportSQL is the query Export runs: every inbound and outbound message
// of the account in the date range, oldest first.
func ExportSQL(o ExportOptions) string {
	where := "account = " + quote(o.Account)
	if !o.From.IsZero() {
		where += " AND date >= DATE " + quote(o.From.Format(time.DateOnly))
	}
	if !o.To.IsZero() {
		where += " AND date <= DATE " + quote(o.To.Format(time.DateOnly))
	}
	return "SELECT * FROM messages WHERE " + where + " ORDER BY timestamp, kind, message_id"
}

func (o ExportOptions) validate() error {
	if o.Account == "" {
		return errors.New("an account is required")
	}
	switch o.Format {
	case ExportCSV, ExportJSON, ExportParquet:
	default:
		return fmt.Errorf("format %q is not csv, json or parquet", o.Format)
	}
	if !o.From.IsZero() && !o.To.IsZero() && o.To.Before(o.From) {
		return fmt.Errorf("the range ends (%s) before it starts (%s)", o.To.Format(time.DateOnly), o.From.Format(time.DateOnly))
	}
	return nil
}

// Export writes an account's messages to path (replaced if it exists,
// only once complete) and returns how many it wrote: Parquet (zstd,
// written by DuckDB, with the archive's column types), CSV with a header
// or JSON lines (written as 'vumi query' writes them).
func (d *DB) Export(ctx context.Context, o ExportOptions, path string) (int64, error) {
	if err := o.validate(); err != nil {
		return 0, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, err
	}
	tmp := filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp")
	var n int64
	if o.Format == ExportParquet {
		res, err := d.conn.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd)", ExportSQL(o), quote(tmp)))
		if err != nil {
			_ = os.Remove(tmp)
			return 0, sqlError(err)
		}
		n, _ = res.RowsAffected()
	} else {
		f, err := os.Create(tmp)
		if err != nil {
			return 0, err
		}
		n, err = d.ExportTo(ctx, o, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(tmp)
			return 0, err
		}
	}
	if err := os.Rename(tmp, abs); err != nil {
		_ = os.Remove(tmp)
		return 0, err
	}
	return n, nil
}

// ExportTo writes the export to w (through a temporary file for Parquet).
func (d *DB) ExportTo(ctx context.Context, o ExportOptions, w io.Writer) (int64, error) {
	if err := o.validate(); err != nil {
		return 0, err
	}
	if o.Format != ExportParquet {
		format := FormatCSV
		if o.Format == ExportJSON {
			format = FormatJSONL
		}
		n, err := d.Run(ctx, ExportSQL(o), format, w, nil, 0)
		return int64(n), err
	}
	path := filepath.Join(d.tmp, "export.parquet")
	n, err := d.Export(ctx, o, path)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	defer os.Remove(path)
	_, err = io.Copy(w, f)
	return n, err
}
