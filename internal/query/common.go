// Package query is SQL over the archive (connectors/archive) for analysts:
// an embedded DuckDB whose views — messages, events, conversations,
// conversation_messages, delivery_funnel, identities, people,
// person_conversations — read the archive's Parquet files in place
// (docs/query.md). Nothing is loaded or copied: each query scans the files
// it needs, pruning by the kind/transport/date directories.
package query

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrNoArchive is returned by Open when the archive directory is missing.
var ErrNoArchive = errors.New("archive directory not found")

// IdentitiesFile is the identity table's file name in the archive
// directory, read when Options.Identities is empty.
const IdentitiesFile = "identities.csv"

// Options configure Open.
type Options struct {
	// Dir is the archive's root (the archiver's directory). Required.
	Dir string
	// Identities is a CSV file with the columns person, address and,
	// optionally, transport; empty means <Dir>/identities.csv when it
	// exists, else no identities (each address is its own person).
	Identities string
	// Threads limits DuckDB's threads (0: one per core).
	Threads int
	// MemoryLimit, e.g. "4GB" (empty: DuckDB's default, 80% of RAM).
	MemoryLimit string
}

// Views are the views Open creates, in dependency order, with a summary.
var Views = []struct{ Name, Summary string }{
	{"messages", "inbound and outbound messages; user_addr/app_addr are the end user's and the application's addresses"},
	{"events", "acks, nacks and delivery reports, with the account of their message"},
	{"conversation_messages", "messages with their conversation_id and position in it"},
	{"conversations", "one row per conversation: an end user and an application address on a transport; each USSD session is one"},
	{"delivery_funnel", "outbound messages per date, transport and account: sent, acked, nacked, delivered, failed"},
	{"identities", "the identity table: person, address, transport (empty when none is given)"},
	{"person_conversations", "conversations with the person of their end user (the address itself when no identity links it)"},
	{"people", "one row per person: addresses, transports, conversations, messages, first and last seen"},
}

// quote is a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// SQLError is an error DuckDB returned for a query: bad SQL, an unknown
// table or column, a type error.
type SQLError struct{ Err error }

func (e *SQLError) Error() string { return "SQL error: " + e.Err.Error() }
func (e *SQLError) Unwrap() error { return e.Err }

// Output formats.
const (
	FormatTable = "table"
	FormatCSV   = "csv"
	FormatJSON  = "json"
	FormatJSONL = "jsonl"
)

// Formats lists the output formats.
var Formats = []string{FormatTable, FormatCSV, FormatJSON, FormatJSONL}

// ValidFormat checks a format name.
func ValidFormat(f string) error {
	for _, v := range Formats {
		if f == v {
			return nil
		}
	}
	return fmt.Errorf("format %q is not one of %s", f, strings.Join(Formats, ", "))
}

// Progress receives a running query's progress: Update with the percent
// done (-1 when DuckDB cannot tell) and rows processed of the rows it
// expects to read; Clear once, before the first result row is written.
type Progress interface {
	Update(percent float64, rows, total uint64)
	Clear()
}

// ProgressLine is a Progress that rewrites one line on W (a terminal's
// stderr) and erases it when the results start. With Plain (stderr is not
// a terminal) it writes a plain line at most every second instead.
type ProgressLine struct {
	W     io.Writer
	Plain bool
	shown bool
	last  time.Time
}

// Update implements Progress.
func (p *ProgressLine) Update(pct float64, rows, total uint64) {
	var msg string
	switch {
	case pct >= 0 && total > 0:
		msg = fmt.Sprintf("scanning: %5.1f%%  %s of %s rows", pct, count(rows), count(total))
	case pct >= 0:
		msg = fmt.Sprintf("scanning: %5.1f%%", pct)
	default:
		msg = fmt.Sprintf("scanning: %s rows", count(rows))
	}
	if p.Plain {
		if now := time.Now(); now.Sub(p.last) >= time.Second {
			p.last = now
			fmt.Fprintln(p.W, msg)
		}
		return
	}
	p.shown = true
	fmt.Fprint(p.W, "\r\033[K"+msg)
}

// Clear implements Progress.
func (p *ProgressLine) Clear() {
	if p.shown {
		fmt.Fprint(p.W, "\r\033[K")
		p.shown = false
	}
}

func count(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return strconv.FormatUint(n, 10)
}

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
