//go:build cgo

package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/marcboeker/go-duckdb/v2"
	"github.com/parquet-go/parquet-go"

	"github.com/vumi-kafka/vumi/connectors/archive"
)

// DB is an open archive.
type DB struct {
	db   *sql.DB
	conn *sql.Conn
	tmp  string
	// Kinds lists the archive kinds that have files.
	Kinds []string
	// Identities is the identity file read, if any.
	Identities string
}

// Open checks the directory and creates the views.
func Open(ctx context.Context, opt Options) (*DB, error) {
	if opt.Dir == "" {
		return nil, errors.New("no archive directory given")
	}
	st, err := os.Stat(opt.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (the archiver's 'directory'; see docs/archive.md)", ErrNoArchive, opt.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("archive directory %s: not a directory", opt.Dir)
	}
	tmp, err := os.MkdirTemp("", "vumi-query-")
	if err != nil {
		return nil, err
	}
	d := &DB{tmp: tmp}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	d.db, err = sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("duckdb: %w", err)
	}
	// One connection: views and settings are per database, progress is
	// per connection.
	d.db.SetMaxOpenConns(1)
	d.conn, err = d.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("duckdb: %w", err)
	}
	settings := []string{"SET TimeZone = 'UTC'"}
	if opt.Threads > 0 {
		settings = append(settings, fmt.Sprintf("SET threads = %d", opt.Threads))
	}
	if opt.MemoryLimit != "" {
		settings = append(settings, "SET memory_limit = "+quote(opt.MemoryLimit))
	}
	for _, s := range settings {
		if _, err := d.conn.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("duckdb %s: %w", s, err)
		}
	}
	if err := d.createViews(ctx, opt); err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

// Close releases the database.
func (d *DB) Close() error {
	var errs []error
	if d.conn != nil {
		errs = append(errs, d.conn.Close())
	}
	if d.db != nil {
		errs = append(errs, d.db.Close())
	}
	if d.tmp != "" {
		errs = append(errs, os.RemoveAll(d.tmp))
	}
	return errors.Join(errs...)
}

// Conn is the connection the views live on.
func (d *DB) Conn() *sql.Conn { return d.conn }

// hasFiles reports whether a kind has any finished file.
func hasFiles(dir, kind string) (bool, error) {
	m, err := filepath.Glob(filepath.Join(globEscape(dir), "kind="+kind, "*", "*", "*.parquet"))
	return len(m) > 0, err
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// template writes an empty file with the archive's columns under a
// Hive-style path, read alongside the archive's files so that every
// column exists (with its type) even when no file has it yet: an empty
// archive, or files written before a column was added.
func template[T any](root, kind string) (string, error) {
	dir := archive.Dir(root, kind, "_", "1970-01-01")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "template.parquet")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	w := parquet.NewGenericWriter[T](f)
	if err := w.Close(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

func (d *DB) readParquet(opt Options, kinds ...string) (string, error) {
	var paths []string
	for _, k := range kinds {
		has, err := hasFiles(opt.Dir, k)
		if err != nil {
			return "", err
		}
		if has {
			d.Kinds = append(d.Kinds, k)
			paths = append(paths, quote(filepath.Join(opt.Dir, "kind="+k, "*", "*", "*.parquet")))
		}
		var tpl string
		if k == archive.KindEvent {
			tpl, err = template[archive.EventRow](d.tmp, k)
		} else {
			tpl, err = template[archive.MessageRow](d.tmp, k)
		}
		if err != nil {
			return "", fmt.Errorf("query: template file: %w", err)
		}
		paths = append(paths, quote(tpl))
	}
	return fmt.Sprintf("read_parquet([%s], hive_partitioning = true, union_by_name = true, hive_types = {'kind': VARCHAR, 'transport': VARCHAR, 'date': DATE})",
		strings.Join(paths, ", ")), nil
}

func (d *DB) createViews(ctx context.Context, opt Options) error {
	msgs, err := d.readParquet(opt, archive.KindInbound, archive.KindOutbound)
	if err != nil {
		return err
	}
	evs, err := d.readParquet(opt, archive.KindEvent)
	if err != nil {
		return err
	}
	idents := opt.Identities
	if idents == "" {
		p := filepath.Join(opt.Dir, IdentitiesFile)
		if _, err := os.Stat(p); err == nil {
			idents = p
		}
	}
	identSQL := "SELECT NULL::VARCHAR AS person, NULL::VARCHAR AS address, NULL::VARCHAR AS transport WHERE false"
	if idents != "" {
		sel, err := d.identities(ctx, idents)
		if err != nil {
			return err
		}
		d.Identities = idents
		identSQL = sel
	}
	stmts := []string{
		// The archive's rows, and which side of the exchange is the end
		// user: the sender of inbound, the recipient of outbound.
		`CREATE TEMP VIEW messages AS
SELECT * EXCLUDE (kind, transport, date), kind, transport, date,
       CASE WHEN kind = 'inbound' THEN from_addr ELSE to_addr END AS user_addr,
       CASE WHEN kind = 'inbound' THEN to_addr ELSE from_addr END AS app_addr
FROM ` + msgs + ` WHERE transport <> '_'`,
		`CREATE TEMP VIEW events AS
SELECT e.* EXCLUDE (account, kind), coalesce(e.account, m.account) AS account
FROM (SELECT * FROM ` + evs + ` WHERE transport <> '_') e
LEFT JOIN (SELECT message_id, any_value(account) AS account FROM messages WHERE kind = 'outbound' AND account IS NOT NULL GROUP BY ALL) m
  ON m.message_id = e.user_message_id`,
		// A conversation: one end user and one application address on
		// one transport; a USSD session (a 'new' session event) starts a
		// new one. Ties in time put inbound first (a reply follows its
		// question).
		// A conversation: one end user and one application address on
		// one transport; a USSD session (a 'new' session event) starts a
		// new one. Ties in time put inbound first (a reply follows its
		// question). One window (one sort) numbers the sessions and the
		// rows; conversations aggregates that directly, and only
		// conversation_messages pays for a second window (the position
		// within the conversation).
		`CREATE TEMP VIEW _conversation_rows AS
SELECT *,
       sum(CASE WHEN session_event = 'new' THEN 1 ELSE 0 END) OVER w AS session_no,
       row_number() OVER w AS _rn
FROM messages WHERE user_addr IS NOT NULL
WINDOW w AS (PARTITION BY transport, user_addr, coalesce(app_addr, '')
             ORDER BY timestamp, kind, kafka_partition, kafka_offset ROWS UNBOUNDED PRECEDING)`,
		`CREATE TEMP VIEW conversation_messages AS
SELECT concat_ws('|', transport, user_addr, coalesce(app_addr, ''), session_no) AS conversation_id,
       row_number() OVER (PARTITION BY transport, user_addr, coalesce(app_addr, ''), session_no ORDER BY _rn) AS position,
       * EXCLUDE (_rn)
FROM _conversation_rows`,
		`CREATE TEMP VIEW conversations AS
SELECT concat_ws('|', transport, user_addr, coalesce(app_addr, ''), session_no) AS conversation_id,
       transport, user_addr, max(app_addr) AS app_addr, session_no,
       bool_or(session_event IS NOT NULL) AS is_session,
       max(account) AS account,
       min(timestamp) AS started, max(timestamp) AS ended,
       count(*) AS messages,
       count(*) FILTER (WHERE kind = 'inbound') AS inbound,
       count(*) FILTER (WHERE kind = 'outbound') AS outbound,
       arg_min(content, _rn) AS first_content,
       arg_max(content, _rn) AS last_content
FROM _conversation_rows
GROUP BY transport, user_addr, coalesce(app_addr, ''), session_no`,
		`CREATE TEMP VIEW delivery_funnel AS
WITH o AS (SELECT DISTINCT message_id, date, transport, account FROM messages WHERE kind = 'outbound'),
e AS (SELECT user_message_id,
             bool_or(event_type = 'ack') AS acked,
             bool_or(event_type = 'nack') AS nacked,
             bool_or(delivery_status = 'delivered') AS delivered,
             bool_or(event_type = 'delivery_report' AND delivery_status = 'failed') AS failed
      FROM events GROUP BY user_message_id)
SELECT o.date, o.transport, o.account,
       count(*) AS sent,
       count(*) FILTER (WHERE e.acked) AS acked,
       count(*) FILTER (WHERE e.nacked) AS nacked,
       count(*) FILTER (WHERE e.delivered) AS delivered,
       count(*) FILTER (WHERE e.failed) AS failed
FROM o LEFT JOIN e ON e.user_message_id = o.message_id
GROUP BY ALL ORDER BY ALL`,
		`CREATE TEMP TABLE identities AS ` + identSQL,
		// A person links addresses across transports; an identity row
		// without a transport links the address on any transport.
		`CREATE TEMP VIEW person_conversations AS
SELECT coalesce(i.person, c.user_addr) AS person, c.*
FROM conversations c
LEFT JOIN identities i ON i.address = c.user_addr AND (i.transport IS NULL OR i.transport = c.transport)`,
		`CREATE TEMP VIEW people AS
SELECT person,
       list(DISTINCT user_addr ORDER BY user_addr) AS addresses,
       list(DISTINCT transport ORDER BY transport) AS transports,
       count(*) AS conversations,
       sum(messages) AS messages,
       min(started) AS first_seen,
       max(ended) AS last_seen
FROM person_conversations GROUP BY person`,
	}
	for _, s := range stmts {
		if _, err := d.conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("query: creating views: %w\n%s", err, s)
		}
	}
	return nil
}

// identities checks the identity table's columns by name and returns the
// SELECT that reads it.
func (d *DB) identities(ctx context.Context, path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("identity table: %w", err)
	}
	src := fmt.Sprintf("read_csv(%s, header = true, all_varchar = true)", quote(path))
	rows, err := d.conn.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		return "", fmt.Errorf("identity table %s: %w", path, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return "", fmt.Errorf("identity table %s: %w", path, err)
		}
		have[n] = true
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("identity table %s: %w", path, err)
	}
	if !have["person"] || !have["address"] {
		return "", fmt.Errorf("identity table %s: needs a header with the columns person and address (and optionally transport); it has %s",
			path, strings.Join(names, ", "))
	}
	transport := "NULL::VARCHAR"
	if have["transport"] {
		transport = "nullif(trim(coalesce(transport, '')), '')"
	}
	return fmt.Sprintf(`SELECT trim(person) AS person, trim(address) AS address, %s AS transport FROM %s
WHERE coalesce(trim(person), '') <> '' AND coalesce(trim(address), '') <> ''`, transport, src), nil
}

func sqlError(err error) error {
	var de *duckdb.Error
	if errors.As(err, &de) {
		return &SQLError{Err: err}
	}
	return err
}
