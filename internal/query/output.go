//go:build cgo

package query

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/marcboeker/go-duckdb/mapping"
	"github.com/marcboeker/go-duckdb/v2"
)

// Run runs one SQL text (several statements are allowed; the last one's
// rows are printed) and writes its rows to w in format. progress, when
// set, is called every interval while the query runs. It returns the
// number of rows written.
func (d *DB) Run(ctx context.Context, text, format string, w io.Writer, progress Progress, interval time.Duration) (int, error) {
	if err := ValidFormat(format); err != nil {
		return 0, err
	}
	if strings.TrimSpace(text) == "" {
		return 0, &SQLError{Err: fmt.Errorf("no SQL given")}
	}
	// DuckDB tracks progress only with its progress bar on; it must not
	// print it (stdout is the results).
	setting := "SET enable_progress_bar = false"
	if progress != nil {
		setting = "SET enable_progress_bar = true; SET enable_progress_bar_print = false"
	}
	if _, err := d.conn.ExecContext(ctx, setting); err != nil {
		return 0, fmt.Errorf("duckdb: %w", err)
	}
	stop := d.watch(progress, interval)
	rows, err := d.conn.QueryContext(ctx, text)
	if err != nil {
		stop()
		return 0, sqlError(err)
	}
	defer rows.Close()
	n, err := write(rows, format, w, stop)
	stop()
	if err != nil {
		return n, sqlError(err)
	}
	return n, nil
}

// watch polls DuckDB's query progress until the returned func is called.
func (d *DB) watch(progress Progress, interval time.Duration) (stop func()) {
	if progress == nil {
		return func() {}
	}
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	var raw mapping.Connection
	found := false
	_ = d.conn.Raw(func(dc any) error {
		raw, found = rawConn(dc)
		return nil
	})
	if !found {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p := mapping.QueryProgress(raw)
				pct, rows, total := mapping.QueryProgressTypeMembers(&p)
				if rows > 0 || pct >= 0 {
					progress.Update(pct, rows, total)
				}
			}
		}
	}()
	once := false
	return func() {
		if !once {
			once = true
			close(done)
			<-finished
			progress.Clear()
		}
	}
}

// rawConn reads the C connection out of go-duckdb's connection, whose
// first field it is in v2.4.3 (checked here by name and type, so that
// another version makes progress quietly unavailable rather than unsafe).
func rawConn(dc any) (mapping.Connection, bool) {
	c, ok := dc.(*duckdb.Conn)
	if !ok || c == nil {
		return mapping.Connection{}, false
	}
	t := reflect.TypeOf(*c)
	if t.NumField() == 0 {
		return mapping.Connection{}, false
	}
	f := t.Field(0)
	if f.Name != "conn" || f.Type != reflect.TypeOf(mapping.Connection{}) || f.Offset != 0 {
		return mapping.Connection{}, false
	}
	return *(*mapping.Connection)(unsafe.Pointer(c)), true
}

// write prints rows; first is called when the first row (or the end) is
// read, so that progress output stops before the results start.
func write(rows *sql.Rows, format string, out io.Writer, first func()) (int, error) {
	cols, err := rows.ColumnTypes()
	if err != nil {
		return 0, err
	}
	names := make([]string, len(cols))
	types := make([]string, len(cols))
	for i, c := range cols {
		names[i], types[i] = c.Name(), c.DatabaseTypeName()
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	defer bw.Flush()
	n := 0
	next := func() (bool, error) {
		more := rows.Next()
		if n == 0 {
			first()
		}
		if !more {
			return false, rows.Err()
		}
		return true, rows.Scan(ptrs...)
	}
	switch format {
	case FormatCSV:
		cw := csv.NewWriter(bw)
		if err := cw.Write(names); err != nil {
			return 0, err
		}
		rec := make([]string, len(cols))
		for {
			more, err := next()
			if err != nil || !more {
				cw.Flush()
				if err == nil {
					err = cw.Error()
				}
				return n, err
			}
			for i, v := range vals {
				rec[i] = text(v, types[i])
			}
			if err := cw.Write(rec); err != nil {
				return n, err
			}
			n++
		}
	case FormatJSON, FormatJSONL:
		keys := make([][]byte, len(names))
		for i, name := range names {
			keys[i], _ = json.Marshal(name)
		}
		if format == FormatJSON {
			bw.WriteString("[")
		}
		for {
			more, err := next()
			if err != nil {
				return n, err
			}
			if !more {
				break
			}
			if format == FormatJSON && n > 0 {
				bw.WriteString(",")
			}
			if format == FormatJSON {
				bw.WriteString("\n")
			}
			bw.WriteByte('{')
			for i, v := range vals {
				if i > 0 {
					bw.WriteByte(',')
				}
				bw.Write(keys[i])
				bw.WriteByte(':')
				b, err := jsonValue(v, types[i])
				if err != nil {
					return n, fmt.Errorf("column %s: %w", names[i], err)
				}
				bw.Write(b)
			}
			bw.WriteByte('}')
			if format == FormatJSONL {
				bw.WriteByte('\n')
			}
			n++
		}
		if format == FormatJSON {
			if n > 0 {
				bw.WriteString("\n")
			}
			bw.WriteString("]\n")
		}
		return n, nil
	default: // table
		var table [][]string
		for {
			more, err := next()
			if err != nil {
				return n, err
			}
			if !more {
				break
			}
			rec := make([]string, len(cols))
			for i, v := range vals {
				if v == nil {
					rec[i] = "NULL"
				} else {
					rec[i] = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(text(v, types[i]))
				}
			}
			table = append(table, rec)
			n++
		}
		printTable(bw, names, table)
		return n, nil
	}
}

func printTable(w io.Writer, names []string, rows [][]string) {
	width := make([]int, len(names))
	for i, n := range names {
		width[i] = utf8.RuneCountInString(n)
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			if i > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(c)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(names)
	sep := make([]string, len(names))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	fmt.Fprintln(w, strings.Join(sep, "-+-"))
	for _, r := range rows {
		line(r)
	}
	if len(rows) == 1 {
		fmt.Fprintln(w, "(1 row)")
	} else {
		fmt.Fprintf(w, "(%d rows)\n", len(rows))
	}
}

// text is a value as CSV/table text: timestamps in RFC 3339 (UTC), dates
// as YYYY-MM-DD, lists and structs as JSON, NULL as the empty string.
func text(v any, typ string) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case time.Time:
		return timeText(x, typ)
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32, int16, int8, uint8, uint16, uint32, uint64, int, *big.Int:
		return fmt.Sprint(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case fmt.Stringer:
		return x.String()
	}
	b, err := jsonValue(v, typ)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func timeText(t time.Time, typ string) string {
	switch typ {
	case "DATE":
		return t.Format("2006-01-02")
	case "TIME":
		return t.Format("15:04:05.999999")
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// jsonValue is a value as JSON: timestamps and dates as strings (as in
// text), integers wider than JSON's safe range as numbers all the same.
func jsonValue(v any, typ string) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return []byte("null"), nil
	case time.Time:
		return json.Marshal(timeText(x, typ))
	case []byte:
		return json.Marshal(string(x))
	case *big.Int:
		return []byte(x.String()), nil
	case duckdb.UUID:
		return json.Marshal(x.String())
	case duckdb.Decimal:
		return []byte(x.String()), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			b, err := jsonValue(e, "")
			if err != nil {
				return nil, err
			}
			parts[i] = string(b)
		}
		return []byte("[" + strings.Join(parts, ",") + "]"), nil
	case map[string]any:
		out := map[string]json.RawMessage{}
		for k, e := range x {
			b, err := jsonValue(e, "")
			if err != nil {
				return nil, err
			}
			out[k] = b
		}
		return json.Marshal(out)
	}
	return json.Marshal(v)
}
