//go:build cgo

package query

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/vumi-kafka/vumi/connectors/archive"
)

// benchMessages is the size of the benchmark archive.
const benchMessages = 10_000_000

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		_ = os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchArchive writes (once per process) an archive of benchMessages
// messages with the archiver's row type and layout: 200,000 end users
// talking to five application addresses over SMS (60%), USSD (30%, in
// sessions of 4 messages) and XMPP (10%) over 30 days, half inbound and
// half outbound, in files of one kind, transport, date and partition.
func benchArchive(b *testing.B) string {
	b.Helper()
	// VUMI_BENCH_ARCHIVE=DIR keeps the archive in DIR between runs
	// (written on the first): for working on the queries.
	if keep := os.Getenv("VUMI_BENCH_ARCHIVE"); keep != "" {
		if _, err := os.Stat(filepath.Join(keep, "complete")); err == nil {
			return keep
		}
		if err := generate(keep, benchMessages); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(keep, "complete"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
		return keep
	}
	benchOnce.Do(func() {
		start := time.Now()
		benchDir, benchErr = os.MkdirTemp("", "vumi-query-bench-")
		if benchErr != nil {
			return
		}
		benchErr = generate(benchDir, benchMessages)
		fmt.Fprintf(os.Stderr, "benchmark archive: %d messages written in %v\n", benchMessages, time.Since(start).Round(time.Millisecond))
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDir
}

type fileKey struct {
	kind, transport, date string
	part                  int32
}

func generate(dir string, n int) error {
	const users, days = 200_000, 30 // users is the number of end users
	day0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	transports := []struct{ name, app string }{{"sms", "1234"}, {"sms", "5678"}, {"ussd", "*120*1#"}, {"ussd", "*120*2#"}, {"xmpp", "bot@example.org"}}
	files := map[fileKey][]archive.MessageRow{}
	var offsets [2]int64
	flush := func(k fileKey) error {
		rows := files[k]
		if len(rows) == 0 {
			return nil
		}
		delete(files, k)
		return writeRows(dir, k, rows)
	}
	contents := []string{"hi", "1", "2", "balance", "Your balance is R12.34. Reply 1 for a bundle, 2 for airtime.", "thanks", "menu: 1. data 2. airtime 3. help"}
	sessionEvents := []string{"new", "resume", "resume", "close"}
	for i := 0; i < n; i++ {
		// Message i belongs to exchange i/4 of a user; exchanges of a
		// user are days apart.
		ex := i / 4
		user := ex % users
		var t int
		switch r := (ex / users) % 10; {
		case r < 6:
			t = r % 2 // sms: 1234 or 5678
		case r < 9:
			t = 2 + r%2 // ussd
		default:
			t = 4
		}
		tr := transports[t]
		ts := day0.Add(time.Duration(float64(ex)/float64(n/4)*float64(days*24*time.Hour)) + time.Duration(i%4)*5*time.Second)
		addr := "+2782" + fmt.Sprintf("%07d", user)
		if tr.name == "xmpp" {
			addr = "user" + strconv.Itoa(user) + "@example.org"
		}
		inbound := i%2 == 0
		kind := archive.KindOutbound
		from, to := tr.app, addr
		if inbound {
			kind, from, to = archive.KindInbound, addr, tr.app
		}
		part := int32(user % 2)
		offsets[part]++
		account := "account-" + strconv.Itoa(user%10)
		row := archive.MessageRow{
			MessageID: fmt.Sprintf("%032x", i), Timestamp: ts,
			FromAddr: &from, ToAddr: &to, Content: &contents[i%len(contents)],
			TransportName: &transports[t].name, TransportType: &transports[t].name,
			Account: &account, Endpoint: "default",
			RoutingMetadata: "{}", HelperMetadata: "{}", TransportMetadata: "{}", Extra: "{}",
			KafkaPartition: part, KafkaOffset: offsets[part],
		}
		if tr.name == "ussd" {
			row.SessionEvent = &sessionEvents[i%4]
		}
		k := fileKey{kind, tr.name, ts.Format(archive.DateFormat), part}
		files[k] = append(files[k], row)
		if len(files[k]) >= 200_000 {
			if err := flush(k); err != nil {
				return err
			}
		}
	}
	for k := range files {
		if err := flush(k); err != nil {
			return err
		}
	}
	return nil
}

func writeRows(dir string, k fileKey, rows []archive.MessageRow) error {
	d := archive.Dir(dir, k.kind, k.transport, k.date)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	path := fmt.Sprintf("%s/%s", d, archive.FileName(k.part, rows[0].KafkaOffset, rows[len(rows)-1].KafkaOffset))
	return writeParquet(path, rows)
}

// BenchmarkConversationQuery runs conversation queries over an archive of
// 10,000,000 messages (target for one user's conversations: < 2 s).
func BenchmarkConversationQuery(b *testing.B) {
	dir := benchArchive(b)
	ctx := context.Background()
	d, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for _, q := range []struct{ name, sql string }{
		{"one_user", `SELECT conversation_id, position, kind, content FROM conversation_messages
			WHERE user_addr = '+27820012345' ORDER BY conversation_id, position`},
		{"one_user_summary", `SELECT * FROM conversations WHERE user_addr = '+27820012345' ORDER BY started`},
		{"one_account_day", `SELECT conversation_id, messages FROM conversations
			WHERE account = 'account-3' AND started >= TIMESTAMPTZ '2026-10-17 00:00:00+00' AND started < TIMESTAMPTZ '2026-10-18 00:00:00+00'`},
		{"all_per_transport", `SELECT transport, is_session, count(*) AS conversations, sum(messages) AS messages FROM conversations GROUP BY ALL`},
	} {
		b.Run(q.name, func(b *testing.B) {
			rows := 0
			for b.Loop() {
				n, err := d.Run(ctx, q.sql, FormatCSV, io.Discard, nil, 0)
				if err != nil {
					b.Fatal(err)
				}
				rows = n
			}
			b.ReportMetric(float64(rows), "rows")
			b.ReportMetric(float64(benchMessages), "archived_msgs")
		})
	}
}

func writeParquet(path string, rows []archive.MessageRow) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := parquet.NewGenericWriter[archive.MessageRow](f, parquet.Compression(&parquet.Zstd))
	for len(rows) > 0 {
		k := min(len(rows), 100_000)
		if _, err := w.Write(rows[:k]); err != nil {
			f.Close()
			return err
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		rows = rows[k:]
	}
	if err := w.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
