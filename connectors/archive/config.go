package archive

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/vumi-kafka/vumi/internal/worker"
	"github.com/vumi-kafka/vumi/topology"
)

// Config keys, declared once so that errors and docs name them the same way.
const (
	KeyDirectory    = "directory"
	KeyTransports   = "transports"
	KeyRollBytes    = "roll_bytes"
	KeyRollInterval = "roll_interval"
	KeyRowGroupRows = "row_group_rows"
	KeyPollRecords  = "poll_records"
	KeyCompression  = "compression"
)

// Compression codecs of the Parquet column chunks.
const (
	CompressionZstd   = "zstd"
	CompressionSnappy = "snappy"
	CompressionGzip   = "gzip"
	CompressionNone   = "none"
)

// Defaults.
const (
	DefaultRollBytes    = 64 << 20
	DefaultRollInterval = 10 * time.Minute
	DefaultRowGroupRows = 100_000
	DefaultPollRecords  = 10_000
)

// Config is the archiver's config.
type Config struct {
	// Directory is the root of the archive; required. Created if missing.
	Directory string `yaml:"directory"`
	// Transports are the transport (or exposed) names whose .inbound,
	// .outbound and .event topics are archived; at least one.
	Transports []string `yaml:"transports"`
	// RollBytes closes a file once the records written to it reach this
	// many bytes (their Avro size, before Parquet's encoding and
	// compression); default 64 MiB.
	RollBytes int64 `yaml:"roll_bytes"`
	// RollInterval closes a file this long after its first record at the
	// latest; default 10m.
	RollInterval time.Duration `yaml:"roll_interval"`
	// RowGroupRows is the most rows per Parquet row group (what a writer
	// holds in memory per open file); default 100000.
	RowGroupRows int `yaml:"row_group_rows"`
	// PollRecords is the most records fetched per poll; default 10000.
	PollRecords int `yaml:"poll_records"`
	// Compression of the column chunks: zstd (default), snappy, gzip or none.
	Compression   string `yaml:"compression"`
	worker.Common `yaml:",inline"`
}

// Validate implements topology.WorkerConfig: it fills defaults and names
// the key at fault.
func (c *Config) Validate() error {
	if c.Directory == "" {
		return fmt.Errorf("key %s: is required", KeyDirectory)
	}
	c.Directory = filepath.Clean(c.Directory)
	if len(c.Transports) == 0 {
		return fmt.Errorf("key %s: at least one transport name is required", KeyTransports)
	}
	seen := map[string]bool{}
	for i, t := range c.Transports {
		if !validName(t) {
			return fmt.Errorf("key %s[%d]: %q is not a transport name (letters, digits, '_', '-', '.')", KeyTransports, i, t)
		}
		if seen[t] {
			return fmt.Errorf("key %s[%d]: %q is listed twice", KeyTransports, i, t)
		}
		seen[t] = true
	}
	if c.RollBytes == 0 {
		c.RollBytes = DefaultRollBytes
	}
	if c.RollBytes < 1 {
		return fmt.Errorf("key %s: must be at least 1, got %d", KeyRollBytes, c.RollBytes)
	}
	if c.RollInterval == 0 {
		c.RollInterval = DefaultRollInterval
	}
	if c.RollInterval < 10*time.Millisecond {
		return fmt.Errorf("key %s: must be at least 10ms, got %v", KeyRollInterval, c.RollInterval)
	}
	if c.RowGroupRows == 0 {
		c.RowGroupRows = DefaultRowGroupRows
	}
	if c.RowGroupRows < 1 {
		return fmt.Errorf("key %s: must be at least 1, got %d", KeyRowGroupRows, c.RowGroupRows)
	}
	if c.PollRecords == 0 {
		c.PollRecords = DefaultPollRecords
	}
	if c.PollRecords < 1 {
		return fmt.Errorf("key %s: must be at least 1, got %d", KeyPollRecords, c.PollRecords)
	}
	switch c.Compression {
	case "":
		c.Compression = CompressionZstd
	case CompressionZstd, CompressionSnappy, CompressionGzip, CompressionNone:
	default:
		return fmt.Errorf("key %s: %q is not zstd, snappy, gzip or none", KeyCompression, c.Compression)
	}
	c.Common.Defaults()
	return nil
}

// validName reports whether s can be a transport name and a path element
// (no separators, not "." or "..").
func validName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}

// IO implements topology.WorkerConfig.
func (c *Config) IO(string) topology.IO {
	var io topology.IO
	for _, t := range c.Transports {
		io.Consumes = append(io.Consumes,
			topology.Stream{Topic: t + topology.SuffixInbound, Kind: "user_message"},
			topology.Stream{Topic: t + topology.SuffixOutbound, Kind: "user_message"},
			topology.Stream{Topic: t + topology.SuffixEvent, Kind: "event"},
		)
		io.Produces = append(io.Produces, topology.Stream{Topic: t + topology.SuffixFailures, Kind: "failure"})
	}
	return io
}
