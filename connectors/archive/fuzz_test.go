package archive

import "testing"

// FuzzParseFileName: names found in the archive directory never panic the
// parser, and it accepts exactly the names FileName writes.
func FuzzParseFileName(f *testing.F) {
	for _, s := range []string{"part-0-0-0.parquet", "part-12-345-6789.parquet", ".part-1-2.parquet.tmp", "part--1-2-3.parquet", "part-1-2-3.parquet.parquet", "part-99999999999-1-2.parquet"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, first, last, ok := parseFileName(name)
		if !ok {
			return
		}
		if first < 0 || last < first {
			t.Fatalf("%q: accepted offsets %d..%d", name, first, last)
		}
		if again := FileName(p, first, last); again != name {
			t.Fatalf("%q accepted but written as %q", name, again)
		}
	})
}
