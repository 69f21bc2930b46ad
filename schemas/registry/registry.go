// Package registry is a schema registry server compatible with Confluent's
// Schema Registry REST API (the subset used by common clients such as
// github.com/riferrei/srclient), for Avro schemas.
//
// Its state lives in a compacted, single-partition Kafka topic ("_schemas"
// by default) in Confluent's record layout, so it survives restarts and any
// number of registry instances pointed at the same topic serve the same
// content:
//
//   - At start-up an instance reads the topic from the beginning to its end
//     and builds its state in memory; a background consumer then keeps
//     tailing the topic, so every instance sees the writes of the others.
//   - Reads are served from memory.
//   - A write appends a record (acks from all in-sync replicas) and returns
//     only once the instance's own consumer has applied it, so a client
//     always reads its own writes.
//   - Schema ids and versions are chosen by the writer and carried in the
//     records. All instances apply records in log order with the same
//     rules, and a record that contradicts an earlier one (for instance two
//     instances registering different schemas as the same new version at
//     the same moment) is ignored by all of them; the writer notices that
//     its record was not applied and retries with fresh numbers. The result
//     is deterministic across instances without electing a leader.
//
// # Endpoints
//
// All bodies are JSON; responses have the content type
// application/vnd.schemaregistry.v1+json and errors the body
// {"error_code": N, "message": "..."} with the HTTP status given by the
// first three digits of N.
//
//	GET    /                                         {}
//	GET    /healthz                                  {"status":"UP"}, no authentication
//	GET    /schemas/types                            ["AVRO"]
//	GET    /schemas/ids/{id}[/schema]                a schema by id, soft-deleted ones too
//	GET    /schemas/ids/{id}/versions                [{"subject","version"}], ?deleted=true
//	GET    /subjects                                 ?deleted=true, ?subjectPrefix=
//	POST   /subjects/{subject}                       look a schema up, ?deleted=true
//	DELETE /subjects/{subject}                       soft delete, ?permanent=true
//	GET    /subjects/{subject}/versions              [1,2,3], ?deleted=true
//	POST   /subjects/{subject}/versions              register: {"id": N}
//	GET    /subjects/{subject}/versions/{v}[/schema] v: a number, "latest" or -1
//	GET    /subjects/{subject}/versions/{v}/referencedby   always []
//	DELETE /subjects/{subject}/versions/{v}          soft delete, ?permanent=true
//	POST   /compatibility/subjects/{subject}/versions[/{v}]  ?verbose=true
//	GET    /config[/{subject}]                       ?defaultToGlobal=true
//	PUT    /config[/{subject}]                       {"compatibility": "FULL"}
//	DELETE /config[/{subject}]
//
// Optional HTTP Basic authentication (Config.Username and Password) guards
// every endpoint but /healthz.
//
// Writes are serialised within an instance, and each write first reads the
// topic up to its end (by appending a NOOP record and waiting for it, as
// Confluent's registry does), so conflicts only arise between instances
// writing at the same moment.
//
// # Limitations
//
//   - Only Avro schemas, without schema references; other schema types are
//     refused with error 42201. SCHEMA records of other types found in the
//     topic are ignored.
//   - No modes (READONLY, IMPORT), contexts, metadata or rule sets.
//   - Confluent's registry elects a leader that performs every write; this
//     one does not, so it should not share its topic with Confluent
//     registry instances that write. A topic written by Confluent's
//     registry can be read: its SCHEMA (Avro), CONFIG and DELETE_SUBJECT
//     records are understood, other record types are skipped.
//   - Like Confluent's, ids freed by permanent deletes are not reused while
//     an instance runs, but may be once the deleting records have been
//     compacted away and an instance restarts.
//   - If an instance dies between losing a race and restating the winning
//     record, a later compaction can keep its losing record instead of the
//     winner, and instances that start afterwards then disagree with the
//     ones that were running about that subject version.
package registry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxWriteAttempts bounds the retries of a write that keeps losing races
// against other instances.
const maxWriteAttempts = 16

// backoff waits a random, growing while after the attempt-th lost race, so
// that instances competing for the same subject spread out.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(attempt+1) * int64(5*time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctxErr(ctx, ctx.Err())
	case <-t.C:
		return nil
	}
}

// Registry is a running schema registry. It is safe for concurrent use.
type Registry struct {
	cfg    Config
	logger *slog.Logger

	// mu guards st, which the consumer updates and handlers read.
	mu sync.RWMutex
	st *state

	// writeSem serialises this instance's writes, so that they never race
	// each other and a write's checks see the effects of the previous one.
	// It is a channel rather than a mutex so that waiting for it respects
	// the request's deadline.
	writeSem chan struct{}

	kl recordLog

	// testHookBeforeWrite, when set, runs after a write has been planned
	// and before its records are produced.
	testHookBeforeWrite atomic.Pointer[func()]

	userHash, passHash [sha256.Size]byte
	handler            http.Handler

	srvMu     sync.Mutex
	servers   []*http.Server
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// recordLog is the append-only log behind a Registry: the Kafka topic in
// production (kafkaLog), an in-memory log in tests.
type recordLog interface {
	// write appends records in order and returns once each has been
	// applied to the state, with the outcomes.
	write(ctx context.Context, recs ...*kgo.Record) ([]outcome, error)
	// sync returns once everything appended before the call is applied.
	sync(ctx context.Context) error
	// running reports whether records are still being applied.
	running() bool
	close()
}

// New validates cfg, connects to Kafka, creates the topic if needed, and
// loads the registry's state from it. It returns once the state reflects
// every record that was in the topic, with a consumer tailing the topic in
// the background. ctx bounds the start-up only.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	return newRegistry(cfg, func(cfg *Config, apply func(*kgo.Record) outcome) (recordLog, error) {
		ctx, cancel := context.WithTimeout(ctx, cfg.InitTimeout)
		defer cancel()
		return openLog(ctx, cfg, apply)
	})
}

// newRegistry builds a Registry on the log returned by open.
func newRegistry(cfg Config, open func(*Config, func(*kgo.Record) outcome) (recordLog, error)) (*Registry, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:      cfg,
		logger:   cfg.Logger,
		st:       newState(),
		writeSem: make(chan struct{}, 1),
	}
	if cfg.Username != "" {
		r.userHash = sha256.Sum256([]byte(cfg.Username))
		r.passHash = sha256.Sum256([]byte(cfg.Password))
	}
	r.handler = r.routes()
	kl, err := open(&r.cfg, r.applyRecord)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r.kl = kl
	return r, nil
}

// Handler returns the HTTP handler serving the REST API. It can be mounted
// on any server; Serve and ListenAndServe use it too.
func (r *Registry) Handler() http.Handler { return r.handler }

// Serve serves the REST API on ln until Close is called, and then returns
// http.ErrServerClosed. It closes ln.
func (r *Registry) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           r.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(r.logger.Handler(), slog.LevelWarn),
	}
	r.srvMu.Lock()
	if r.closed {
		r.srvMu.Unlock()
		_ = ln.Close()
		return http.ErrServerClosed
	}
	r.servers = append(r.servers, srv)
	r.srvMu.Unlock()
	r.logger.Info("schema registry serving", "addr", ln.Addr().String())
	return srv.Serve(ln)
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (r *Registry) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("registry: listening on %s: %w", addr, err)
	}
	return r.Serve(ln)
}

// Close gracefully stops the servers started by Serve (waiting up to five
// seconds for requests in flight), then stops the Kafka clients. Handlers
// obtained from Handler keep serving reads from memory after Close but
// fail writes. Close is idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.srvMu.Lock()
		r.closed = true
		servers := r.servers
		r.srvMu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var errs []error
		for _, srv := range servers {
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, err, srv.Close())
			}
		}
		r.kl.close()
		if err := errors.Join(errs...); err != nil {
			r.closeErr = fmt.Errorf("registry: closing: %w", err)
		}
	})
	return r.closeErr
}

// applyRecord is the consumer's callback: it decodes a record and applies
// it to the state.
func (r *Registry) applyRecord(rec *kgo.Record) outcome {
	lr, err := decodeRecord(rec.Key, rec.Value)
	if err != nil {
		r.logger.Warn("skipping undecodable record in the schema registry topic",
			"offset", rec.Offset, "error", err)
		return ignored(conflictInvalid, "%v", err)
	}
	r.mu.Lock()
	o := r.st.apply(lr)
	r.mu.Unlock()
	if !o.applied {
		r.logger.Info("ignored record in the schema registry topic", "offset", rec.Offset, "reason", o.detail)
	}
	return o
}

// read runs fn with the state read-locked.
func (r *Registry) read(fn func(st *state)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn(r.st)
}

// writeRecords appends records and returns their outcomes. A SCHEMA record
// of ours that was ignored because its key holds something else is followed
// by a restatement of that key's value (see restate).
func (r *Registry) writeRecords(ctx context.Context, recs ...*kgo.Record) ([]outcome, error) {
	if hook := r.testHookBeforeWrite.Load(); hook != nil {
		(*hook)()
	}
	outs, err := r.kl.write(ctx, recs...)
	if err != nil {
		return nil, err
	}
	for i, o := range outs {
		if o.conflict != conflictKey && o.conflict != conflictUndelete {
			continue
		}
		if lr, err := decodeRecord(recs[i].Key, nil); err == nil && lr.kind == kindSchema {
			if err := r.restate(ctx, lr.subject, int(lr.version)); err != nil {
				return nil, err
			}
		}
	}
	return outs, nil
}

// beginWrite takes the write lock and brings the state up to date with the
// end of the topic, so that the checks of the write see everything written
// before it by any instance. The caller must call the returned function.
func (r *Registry) beginWrite(ctx context.Context, op string) (func(), error) {
	select {
	case r.writeSem <- struct{}{}:
	case <-ctx.Done():
		return nil, errStore(op, fmt.Errorf("waiting for the writes before this one: %w", ctxErr(ctx, ctx.Err())))
	}
	release := func() { <-r.writeSem }
	if err := r.kl.sync(ctx); err != nil {
		release()
		return nil, errStore(op, err)
	}
	return release, nil
}

func schemaRecord(subject string, version, id int, text string, deleted bool) *kgo.Record {
	return &kgo.Record{
		Key:   schemaKeyBytes(subject, version),
		Value: schemaValueBytes(subject, version, id, text, deleted),
	}
}

func schemaTombstone(subject string, version int) *kgo.Record {
	return &kgo.Record{Key: schemaKeyBytes(subject, version)}
}

// register registers ps under subject and returns its id.
func (r *Registry) register(ctx context.Context, subject string, ps *parsedSchema) (int, error) {
	done, err := r.beginWrite(ctx, "Register")
	if err != nil {
		return 0, err
	}
	defer done()
	for attempt := range maxWriteAttempts {
		var (
			reg      registration
			incompat []string
		)
		r.read(func(st *state) { reg, incompat, err = st.planRegister(subject, ps, r.cfg.DefaultCompatibility) })
		if err != nil {
			return 0, &apiError{Code: codeStoreError, Message: "Error while registering schema: " + err.Error(), cause: err}
		}
		if len(incompat) > 0 {
			return 0, newAPIError(codeIncompatibleSchema,
				"Schema being registered is incompatible with an earlier schema for subject \"%s\", details: [%s]",
				subject, strings.Join(incompat, "; "))
		}
		if reg.exists {
			return reg.id, nil
		}
		outs, err := r.writeRecords(ctx, schemaRecord(subject, reg.version, reg.id, reg.text, false))
		if err != nil {
			return 0, errStore("Register", err)
		}
		if outs[0].applied {
			r.logger.Info("registered schema", "subject", subject, "version", reg.version, "id", reg.id)
			return reg.id, nil
		}
		r.logger.Warn("schema registration lost a race with another registry instance; retrying",
			"subject", subject, "version", reg.version, "id", reg.id, "reason", outs[0].detail)
		if err := backoff(ctx, attempt); err != nil {
			return 0, errStore("Register", err)
		}
	}
	return 0, &apiError{Code: codeStoreError, Message: fmt.Sprintf(
		"Error while registering schema: gave up after %d attempts lost to concurrent writers", maxWriteAttempts)}
}

// restate rewrites the current value of subject/version after one of our
// records for that key was ignored. Log compaction keeps only the last
// record of each key, and without this the ignored record would be the one
// kept, changing what a fresh instance reads once the log is compacted.
// Restating the current value is a no-op for every instance.
func (r *Registry) restate(ctx context.Context, subject string, vn int) error {
	for range maxWriteAttempts {
		var rec *kgo.Record
		r.read(func(st *state) {
			if v := st.getVersion(subject, vn, true); v != nil {
				if sc := st.schemaByID(v.id); sc != nil {
					rec = schemaRecord(subject, vn, v.id, sc.text, v.deleted)
				}
			}
		})
		if rec == nil {
			// Permanently deleted since: the tombstone, which follows
			// our record in the log, already settles the key.
			return nil
		}
		outs, err := r.kl.write(ctx, rec)
		if err != nil {
			return err
		}
		if outs[0].applied {
			return nil
		}
	}
	return fmt.Errorf("could not restate subject %q version %d: it keeps changing", subject, vn)
}

// deleteVersion deletes a version of subject, softly or permanently, and
// returns the deleted version's number. vn may be latestVersion: the latest
// live version for a soft delete, the latest version for a permanent one.
func (r *Registry) deleteVersion(ctx context.Context, subject string, vn int, vstr string, permanent bool) (int, error) {
	done, err := r.beginWrite(ctx, "Delete Schema Version")
	if err != nil {
		return 0, err
	}
	defer done()
	for attempt := range maxWriteAttempts {
		var (
			rec    *kgo.Record
			target int
			apiErr *apiError
		)
		r.read(func(st *state) {
			v := st.getVersion(subject, vn, permanent)
			if v == nil && !permanent && st.getVersion(subject, vn, true) != nil {
				apiErr = newAPIError(codeVersionSoftDeleted,
					"Subject '%s' Version %s was soft deleted.Set permanent=true to delete permanently", subject, vstr)
				return
			}
			if v == nil {
				if !st.hasSubject(subject, true) {
					apiErr = errSubjectNotFound(subject)
				} else {
					apiErr = errVersionNotFound(vn)
				}
				return
			}
			target = v.version
			if permanent {
				if !v.deleted {
					apiErr = newAPIError(codeVersionNotSoftDeleted,
						"Subject '%s' Version %d was not deleted first before being permanently deleted", subject, v.version)
					return
				}
				rec = schemaTombstone(subject, v.version)
				return
			}
			rec = schemaRecord(subject, v.version, v.id, st.schemaByID(v.id).text, true)
		})
		if apiErr != nil {
			return 0, apiErr
		}
		outs, err := r.writeRecords(ctx, rec)
		if err != nil {
			return 0, errStore("Delete Schema Version", err)
		}
		if outs[0].applied {
			r.logger.Info("deleted schema version", "subject", subject, "version", target, "permanent", permanent)
			return target, nil
		}
		// The version changed under us; look again.
		if err := backoff(ctx, attempt); err != nil {
			return 0, errStore("Delete Schema Version", err)
		}
	}
	return 0, &apiError{Code: codeStoreError, Message: "Error while deleting schema version: too many concurrent changes"}
}

// deleteSubject deletes all versions of subject, softly or permanently, and
// returns their numbers. Like Confluent's registry, a soft delete also
// drops the subject's compatibility setting, and a permanent delete
// requires a soft delete first.
func (r *Registry) deleteSubject(ctx context.Context, subject string, permanent bool) ([]int, error) {
	done, err := r.beginWrite(ctx, "Delete Subject")
	if err != nil {
		return nil, err
	}
	defer done()
	for attempt := range maxWriteAttempts {
		var (
			recs     []*kgo.Record
			versions []int
			apiErr   *apiError
		)
		r.read(func(st *state) {
			switch {
			case !st.hasSubject(subject, true):
				apiErr = errSubjectNotFound(subject)
			case permanent && st.hasSubject(subject, false):
				apiErr = newAPIError(codeSubjectNotSoftDeleted,
					"Subject '%s' was not deleted first before being permanently deleted", subject)
			case !permanent && !st.hasSubject(subject, false):
				apiErr = newAPIError(codeSubjectSoftDeleted,
					"Subject '%s' was soft deleted.Set permanent=true to delete permanently", subject)
			case permanent:
				versions = st.versions(subject, true)
				for _, vn := range versions {
					recs = append(recs, schemaTombstone(subject, vn))
				}
			default:
				versions = st.versions(subject, false)
				for _, vn := range versions {
					v := st.getVersion(subject, vn, false)
					recs = append(recs, schemaRecord(subject, vn, v.id, st.schemaByID(v.id).text, true))
				}
				if _, ok := st.subjectLevels[subject]; ok {
					recs = append(recs, &kgo.Record{Key: configKeyBytes(subject, false)})
				}
			}
		})
		if apiErr != nil {
			return nil, apiErr
		}
		outs, err := r.writeRecords(ctx, recs...)
		if err != nil {
			return nil, errStore("Delete Subject", err)
		}
		if allApplied(outs) {
			r.logger.Info("deleted subject", "subject", subject, "versions", versions, "permanent", permanent)
			return versions, nil
		}
		// A version changed under us; whatever was applied stays
		// applied, look again for the rest.
		if err := backoff(ctx, attempt); err != nil {
			return nil, errStore("Delete Subject", err)
		}
	}
	return nil, &apiError{Code: codeStoreError, Message: "Error while deleting subject: too many concurrent changes"}
}

func allApplied(outs []outcome) bool {
	for _, o := range outs {
		if !o.applied {
			return false
		}
	}
	return true
}

// setLevel sets the compatibility level of subject, or the global one.
func (r *Registry) setLevel(ctx context.Context, subject string, global bool, level Level) error {
	done, err := r.beginWrite(ctx, "Update Config")
	if err != nil {
		return err
	}
	defer done()
	rec := &kgo.Record{Key: configKeyBytes(subject, global), Value: configValueBytes(level)}
	if _, err := r.writeRecords(ctx, rec); err != nil {
		return errStore("Update Config", err)
	}
	r.logger.Info("set compatibility level", "subject", subject, "global", global, "level", level)
	return nil
}

// deleteLevel removes the compatibility level of subject, or the global
// one, and returns the level that was in force before. Deleting the level
// of a subject that has none is an error (40401, as in Confluent's
// registry); deleting the global one reverts to the configured default.
func (r *Registry) deleteLevel(ctx context.Context, subject string, global bool) (Level, error) {
	done, err := r.beginWrite(ctx, "Delete Config")
	if err != nil {
		return "", err
	}
	defer done()
	var (
		old Level
		ok  bool
	)
	r.read(func(st *state) {
		if global {
			old, ok = st.globalOrDefault(r.cfg.DefaultCompatibility), true
		} else {
			old, ok = st.subjectLevels[subject]
		}
	})
	if !ok {
		return "", errSubjectNotFound(subject)
	}
	if _, err := r.writeRecords(ctx, &kgo.Record{Key: configKeyBytes(subject, global)}); err != nil {
		return "", errStore("Delete Config", err)
	}
	r.logger.Info("deleted compatibility level", "subject", subject, "global", global)
	return old, nil
}
