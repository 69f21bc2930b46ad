package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vumi-kafka/vumi/connectors/archive"
	"github.com/vumi-kafka/vumi/internal/query"
	"github.com/vumi-kafka/vumi/topology"
)

// archiveFlags choose the archive: -dir, or the directory of an archiver
// worker of -c FILE.
type archiveFlags struct {
	dir        string
	config     string
	worker     string
	identities string
	threads    int
	memory     string
}

func (a *archiveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.dir, "dir", envOr("VUMI_ARCHIVE_DIR", ""), "archive directory (the archiver's directory; $VUMI_ARCHIVE_DIR; default: from -c, else ./archive)")
	fs.StringVar(&a.config, "c", envOr("VUMI_CONFIG", ""), "deployment config: use the directory of its archiver worker ($VUMI_CONFIG)")
	fs.StringVar(&a.worker, "worker", "", "with -c, the archiver worker to use when the config has several")
	fs.StringVar(&a.identities, "identities", "", "identity table (CSV: person,address[,transport]); default <dir>/identities.csv when present")
	fs.IntVar(&a.threads, "threads", 0, "DuckDB threads (default: one per core)")
	fs.StringVar(&a.memory, "memory-limit", "", "DuckDB memory limit, e.g. 4GB (default: 80% of RAM)")
}

// directory resolves the archive directory.
func (a *archiveFlags) directory() (string, error) {
	if a.dir != "" {
		return a.dir, nil
	}
	if a.config == "" {
		return "archive", nil
	}
	cfg, err := topology.LoadFile(a.config, kinds())
	if err != nil {
		return "", err
	}
	var dirs, names []string
	for _, w := range cfg.Workers {
		if ac, ok := w.Config.(*archive.Config); ok && (a.worker == "" || a.worker == w.Name) {
			dirs, names = append(dirs, ac.Directory), append(names, w.Name)
		}
	}
	switch {
	case len(dirs) == 0 && a.worker != "":
		return "", fmt.Errorf("%s: no archiver worker named %q", a.config, a.worker)
	case len(dirs) == 0:
		return "", fmt.Errorf("%s: no archiver worker; give the archive directory with -dir", a.config)
	case len(dirs) > 1:
		return "", usagef("%s has several archiver workers (%s): choose one with -worker", a.config, strings.Join(names, ", "))
	}
	return dirs[0], nil
}

func (a *archiveFlags) open(ctx context.Context) (*query.DB, error) {
	dir, err := a.directory()
	if err != nil {
		return nil, err
	}
	return query.Open(ctx, query.Options{Dir: dir, Identities: a.identities, Threads: a.threads, MemoryLimit: a.memory})
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func queryCommand() *command {
	c := &command{
		name:    "query",
		summary: "SQL over the message archive (DuckDB): messages, events, conversations, delivery_funnel, people views",
		usage: "[-dir DIR | -c FILE] [-format table|csv|json|jsonl] [-progress] [-identities FILE] (SQL... | -f FILE | -)\n\n" +
			"  vumi query -dir archive \"SELECT * FROM conversations ORDER BY started DESC LIMIT 10\"\n" +
			"  vumi query -views                 list the views and their columns",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		var af archiveFlags
		af.register(fs)
		format := fs.String("format", query.FormatTable, "output: table, csv, json (an array) or jsonl (one object a line)")
		file := fs.String("f", "", "read the SQL from this file")
		progress := fs.Bool("progress", false, "show scan progress on stderr even when it is not a terminal")
		noProgress := fs.Bool("no-progress", false, "never show progress")
		views := fs.Bool("views", false, "list the views and their columns")
		if err := parse(fs, args); err != nil {
			return err
		}
		if err := query.ValidFormat(*format); err != nil {
			return usagef("-format: %v", err)
		}
		var text string
		switch {
		case *views:
			if fs.NArg() > 0 || *file != "" {
				return usagef("-views takes no SQL")
			}
		case *file != "" && fs.NArg() > 0:
			return usagef("give the SQL either with -f or as arguments, not both")
		case *file != "":
			b, err := os.ReadFile(*file)
			if err != nil {
				return err
			}
			text = string(b)
		case fs.NArg() == 1 && fs.Arg(0) == "-":
			b, err := io.ReadAll(e.stdin)
			if err != nil {
				return err
			}
			text = string(b)
		case fs.NArg() == 0:
			return usagef("no SQL given (arguments, -f FILE or - for stdin)")
		default:
			text = strings.Join(fs.Args(), " ")
		}
		db, err := af.open(ctx)
		if err != nil {
			return err
		}
		defer db.Close()
		if *views {
			text = viewsSQL()
		}
		var p query.Progress
		if tty := isTerminal(e.stderr); !*noProgress && (*progress || tty) {
			p = &query.ProgressLine{W: e.stderr, Plain: !tty}
		}
		_, err = db.Run(ctx, text, *format, e.stdout, p, 250*time.Millisecond)
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil
		}
		return err
	}
	return c
}

// viewsSQL lists the views with their summaries and columns.
func viewsSQL() string {
	var vals []string
	for i, v := range query.Views {
		vals = append(vals, fmt.Sprintf("(%d, '%s', '%s')", i, v.Name, strings.ReplaceAll(v.Summary, "'", "''")))
	}
	return `SELECT v.name AS view, v.summary, string_agg(c.column_name, ', ' ORDER BY c.ordinal_position) AS columns
FROM (VALUES ` + strings.Join(vals, ", ") + `) v(i, name, summary)
JOIN information_schema.columns c ON c.table_name = v.name
GROUP BY v.i, v.name, v.summary ORDER BY v.i`
}

func exportCommand() *command {
	c := &command{
		name:    "export",
		summary: "export one account's archived messages by date as CSV, JSON lines or Parquet",
		usage:   "-account A [-from YYYY-MM-DD] [-to YYYY-MM-DD] [-format csv|json|parquet] [-o FILE] [-dir DIR | -c FILE]",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		var af archiveFlags
		af.register(fs)
		account := fs.String("account", "", "the account (required)")
		from := fs.String("from", "", "first date, UTC, inclusive (default: the first)")
		to := fs.String("to", "", "last date, UTC, inclusive (default: the last)")
		format := fs.String("format", query.ExportCSV, "csv, json (JSON lines) or parquet")
		out := fs.String("o", "", "output file (default: stdout; required for parquet on a terminal)")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("unexpected argument %q", fs.Arg(0))
		}
		if *account == "" {
			return usagef("-account is required")
		}
		o := query.ExportOptions{Account: *account, Format: *format}
		for _, d := range []struct {
			flag, v string
			t       *time.Time
		}{{"-from", *from, &o.From}, {"-to", *to, &o.To}} {
			if d.v == "" {
				continue
			}
			t, err := time.Parse(time.DateOnly, d.v)
			if err != nil {
				return usagef("%s: %q is not a date (YYYY-MM-DD)", d.flag, d.v)
			}
			*d.t = t
		}
		switch *format {
		case query.ExportCSV, query.ExportJSON, query.ExportParquet:
		default:
			return usagef("-format: %q is not csv, json or parquet", *format)
		}
		if *out == "" && *format == query.ExportParquet && isTerminal(e.stdout) {
			return usagef("parquet is binary: give -o FILE or redirect stdout")
		}
		db, err := af.open(ctx)
		if err != nil {
			return err
		}
		defer db.Close()
		var n int64
		if *out == "" || *out == "-" {
			n, err = db.ExportTo(ctx, o, e.stdout)
		} else {
			n, err = db.Export(ctx, o, *out)
		}
		if err != nil {
			return err
		}
		if *out != "" && *out != "-" {
			fmt.Fprintf(e.stderr, "%d messages of account %s written to %s\n", n, *account, *out)
		}
		return nil
	}
	return c
}
