//go:build cgo

package query

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

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
