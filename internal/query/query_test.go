//go:build cgo

package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/vumi-kafka/vumi/connectors/archive"
)

// writeFile writes rows as one archive file of a kind, transport and date.
func writeFile[T any](t testing.TB, root, kind, transport, date string, part int32, rows []T) {
	t.Helper()
	dir := archive.Dir(root, kind, transport, date)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, archive.FileName(part, 0, int64(len(rows)))))
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f, parquet.Compression(&parquet.Zstd))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func s(v string) *string { return &v }

func runJSON(t *testing.T, d *DB, q string) []map[string]any {
	t.Helper()
	var out bytes.Buffer
	if _, err := d.Run(context.Background(), q, FormatJSON, &out, nil, 0); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("%s: %v\n%s", q, err, out.String())
	}
	return rows
}

func TestMissingDirAndBadSQL(t *testing.T) {
	_, err := Open(context.Background(), Options{Dir: filepath.Join(t.TempDir(), "nope")})
	if !errors.Is(err, ErrNoArchive) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing dir: %v", err)
	}
	d, err := Open(context.Background(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// An empty archive has every view, with no rows.
	for _, v := range Views {
		rows := runJSON(t, d, "SELECT count(*) AS n FROM "+v.Name)
		if fmt.Sprint(rows[0]["n"]) != "0" {
			t.Errorf("%s: %v", v.Name, rows)
		}
	}
	var out bytes.Buffer
	_, err = d.Run(context.Background(), "SELEC 1", FormatTable, &out, nil, 0)
	var se *SQLError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("bad SQL: %v", err)
	}
	_, err = d.Run(context.Background(), "SELECT nope FROM messages", FormatTable, &out, nil, 0)
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("bad column: %v", err)
	}
	if _, err := d.Run(context.Background(), "SELECT 1", "xml", &out, nil, 0); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("bad format: %v", err)
	}
}

func TestFormats(t *testing.T) {
	d, err := Open(context.Background(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	q := `SELECT 1 AS n, 'a,"b"' AS s, NULL AS z, TIMESTAMPTZ '2026-11-22 10:00:00+00' AS ts, DATE '2026-11-22' AS d, [1,2] AS l
	      UNION ALL SELECT 22, 'x', 'y', NULL, NULL, NULL ORDER BY n`
	want := map[string]string{
		FormatCSV: "n,s,z,ts,d,l\n1,\"a,\"\"b\"\"\",,2026-11-22T10:00:00Z,2026-11-22,\"[1,2]\"\n22,x,y,,,\n",
		FormatJSONL: `{"n":1,"s":"a,\"b\"","z":null,"ts":"2026-11-22T10:00:00Z","d":"2026-11-22","l":[1,2]}` + "\n" +
			`{"n":22,"s":"x","z":"y","ts":null,"d":null,"l":null}` + "\n",
		FormatTable: "n  | s     | z    | ts                   | d          | l\n" +
			"---+-------+------+----------------------+------------+------\n" +
			"1  | a,\"b\" | NULL | 2026-11-22T10:00:00Z | 2026-11-22 | [1,2]\n" +
			"22 | x     | y    | NULL                 | NULL       | NULL\n(2 rows)\n",
	}
	for f, w := range want {
		var out bytes.Buffer
		n, err := d.Run(context.Background(), q, f, &out, nil, 0)
		if err != nil || n != 2 {
			t.Fatalf("%s: %d %v", f, n, err)
		}
		if out.String() != w {
			t.Errorf("%s:\n got %q\nwant %q", f, out.String(), w)
		}
	}
	rows := runJSON(t, d, q)
	if len(rows) != 2 || rows[1]["s"] != "x" {
		t.Errorf("json: %v", rows)
	}
}

// recorder is a Progress that remembers what it was told, and whether the
// results had started when it was.
type recorder struct {
	out       *bytes.Buffer
	updates   int
	lastPct   float64
	total     uint64
	clearedAt int
	late      bool
}

func (r *recorder) Update(pct float64, _, total uint64) {
	r.updates++
	r.lastPct, r.total = pct, total
	if r.out.Len() > 0 {
		r.late = true
	}
}

func (r *recorder) Clear() { r.clearedAt = r.out.Len() }

// TestProgress: a long query reports progress (polled every millisecond
// here), and the progress is cleared before the first result is written.
func TestProgress(t *testing.T) {
	d, err := Open(context.Background(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// A Parquet file of 20M rows in 200 row groups: DuckDB reports scan
	// progress by row group.
	file := filepath.Join(t.TempDir(), "big.parquet")
	var sink bytes.Buffer
	if _, err := d.Run(context.Background(), "COPY (SELECT i FROM range(20000000) t(i)) TO "+quote(file)+" (FORMAT parquet, ROW_GROUP_SIZE 100000)", FormatCSV, &sink, nil, 0); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r := &recorder{out: &out, clearedAt: -1}
	if _, err := d.Run(context.Background(), "SELECT count(DISTINCT i % 1000003) AS n FROM read_parquet("+quote(file)+")", FormatCSV, &out, r, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if r.updates == 0 || r.lastPct < 0 || r.lastPct > 100 || r.late || r.clearedAt != 0 {
		t.Errorf("progress: %+v", r)
	}
	if out.String() != "n\n1000003\n" {
		t.Errorf("result %q", out.String())
	}
	t.Logf("%d progress updates, last %.1f%% of %d rows", r.updates, r.lastPct, r.total)
	var plain bytes.Buffer
	p := &ProgressLine{W: &plain, Plain: true}
	p.Update(12.5, 1500, 20000)
	p.Update(13, 1600, 20000) // within the second: not written
	p.Clear()
	if plain.String() != "scanning:  12.5%  1500 of 20k rows\n" {
		t.Errorf("plain progress %q", plain.String())
	}
}

// TestIdentityTable: columns are found by name, transport is optional, and
// a file without person and address is a clear error.
func TestIdentityTable(t *testing.T) {
	cases := []struct{ csv, want, err string }{
		{"person,address\nalice,+27820000001\n , \n", `[{"address":"+27820000001","person":"alice","transport":null}]`, ""},
		{"address,transport,person\nalice@example.org,xmpp,alice\nx,,bob\n",
			`[{"address":"alice@example.org","person":"alice","transport":"xmpp"},{"address":"x","person":"bob","transport":null}]`, ""},
		{"who,addr\nx,y\n", "", "needs a header with the columns person and address (and optionally transport); it has who, addr"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		path := filepath.Join(dir, "ids.csv")
		if err := os.WriteFile(path, []byte(c.csv), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := Open(context.Background(), Options{Dir: dir, Identities: path})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want %q", c.csv, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		rows := runJSON(t, d, "SELECT * FROM identities ORDER BY person")
		d.Close()
		if b, _ := json.Marshal(rows); string(b) != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.csv, b, c.want)
		}
	}
}
