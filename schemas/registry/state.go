package registry

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// state is the registry's content, built by applying the records of the
// topic in log order. It is a pure state machine: no I/O, no locking (the
// Registry guards it with an RWMutex), and every instance that applies the
// same records in the same order ends up with the same state.
//
// Conflicting records — possible when several registry instances write at
// once — are resolved deterministically: the first record in the log wins
// and a later SCHEMA record that contradicts it is ignored by everybody.
// A SCHEMA record contradicts the state when
//   - its subject/version is already bound to a different schema id,
//   - its id is already bound to a different schema,
//   - its schema is already bound to a different id (ids and schemas are in
//     one-to-one correspondence), or
//   - it would turn a soft-deleted version back into a live one.
//
// The writer of an ignored record notices (see Registry.writeRecords),
// restates the winning value when the loser shared its key (so that log
// compaction, which keeps the last record of each key, keeps the winner),
// and retries with fresh numbers.
type state struct {
	subjects    map[string]*subjectState
	schemas     map[int]*storedSchema
	byCanonical map[string]*storedSchema
	// maxID is the largest schema id ever applied; new ids are allocated
	// above it so that ids of permanently deleted schemas are not reused
	// while this process lives.
	maxID int

	globalLevel   Level // "" when not configured
	subjectLevels map[string]Level
}

// storedSchema is a schema bound to a global id.
type storedSchema struct {
	id     int
	text   string // the schema text of the record that bound the id
	parsed *parsedSchema
	// refs counts the versions (live or soft-deleted) using this schema;
	// the id is unbound when the last one is permanently deleted.
	refs int
}

// version is one version of a subject.
type version struct {
	subject string
	version int
	id      int
	deleted bool
}

type subjectState struct {
	versions map[int]*version
	sorted   []int // version numbers, ascending
}

func newState() *state {
	return &state{
		subjects:      map[string]*subjectState{},
		schemas:       map[int]*storedSchema{},
		byCanonical:   map[string]*storedSchema{},
		subjectLevels: map[string]Level{},
	}
}

// outcome is the result of applying one record.
type outcome struct {
	// applied is false when the record was ignored.
	applied bool
	// conflict says why a SCHEMA record was ignored.
	conflict conflictKind
	// detail describes the reason for humans.
	detail string
}

type conflictKind int

const (
	conflictNone conflictKind = iota
	// conflictKey: the subject/version is bound to a different schema.
	conflictKey
	// conflictID: the id is bound to a different schema, or the schema to
	// a different id.
	conflictID
	// conflictUndelete: the record would revive a soft-deleted version.
	conflictUndelete
	// conflictInvalid: the record is malformed or unsupported.
	conflictInvalid
)

func applied() outcome { return outcome{applied: true} }

func ignored(kind conflictKind, format string, args ...any) outcome {
	return outcome{conflict: kind, detail: fmt.Sprintf(format, args...)}
}

// apply applies one decoded record to the state.
func (s *state) apply(rec logRecord) outcome {
	switch rec.kind {
	case kindSchema:
		if rec.tombstone {
			return s.applySchemaTombstone(rec.subject, rec.version)
		}
		return s.applySchema(rec.subject, rec.version, rec.schema)
	case kindConfig:
		return s.applyConfig(rec)
	case kindDeleteSubject:
		if rec.tombstone {
			return applied()
		}
		return s.applyDeleteSubject(rec.subject, rec.deleteSubject)
	default:
		// NOOP and key types this registry does not use.
		return applied()
	}
}

func validNumber(n int64) bool { return n >= 1 && n <= math.MaxInt32 }

func (s *state) applySchema(subject string, ver int64, v *schemaValueJSON) outcome {
	switch {
	case v.Subject != subject || v.Version != ver:
		return ignored(conflictInvalid, "value names subject %q version %d but the key names subject %q version %d",
			v.Subject, v.Version, subject, ver)
	case !validNumber(ver):
		return ignored(conflictInvalid, "invalid version %d", ver)
	case !validNumber(v.ID):
		return ignored(conflictInvalid, "invalid schema id %d", v.ID)
	case v.SchemaType != "" && v.SchemaType != schemaTypeAvro:
		return ignored(conflictInvalid, "unsupported schema type %q", v.SchemaType)
	case len(v.References) > 0:
		return ignored(conflictInvalid, "schema references are not supported")
	}
	id, vn := int(v.ID), int(ver)

	// The schema bound to the record's id, or the parsed record schema.
	bound := s.schemas[id]
	var ps *parsedSchema
	if bound != nil && bound.text == v.Schema {
		ps = bound.parsed
	} else {
		var err error
		if ps, err = parseAvro(v.Schema); err != nil {
			return ignored(conflictInvalid, "invalid schema for id %d: %v", id, err)
		}
	}
	sameAsBound := bound != nil && bound.parsed.canonical == ps.canonical

	sub := s.subjects[subject]
	if sub != nil {
		if cur := sub.versions[vn]; cur != nil {
			switch {
			case cur.id != id || !sameAsBound:
				return ignored(conflictKey, "subject %q version %d already holds a different schema (id %d)", subject, vn, cur.id)
			case cur.deleted && !v.Deleted:
				return ignored(conflictUndelete, "subject %q version %d is soft-deleted and cannot be revived", subject, vn)
			}
			cur.deleted = v.Deleted
			return applied()
		}
	}

	if bound != nil && !sameAsBound {
		return ignored(conflictID, "schema id %d is already bound to a different schema", id)
	}
	if other := s.byCanonical[ps.canonical]; other != nil && other.id != id {
		return ignored(conflictID, "the schema is already registered with id %d, not %d", other.id, id)
	}

	// A new version.
	if bound == nil {
		bound = &storedSchema{id: id, text: v.Schema, parsed: ps}
		s.schemas[id] = bound
		s.byCanonical[ps.canonical] = bound
	}
	bound.refs++
	s.maxID = max(s.maxID, id)
	if sub == nil {
		sub = &subjectState{versions: map[int]*version{}}
		s.subjects[subject] = sub
	}
	sub.versions[vn] = &version{subject: subject, version: vn, id: id, deleted: v.Deleted}
	i, _ := slices.BinarySearch(sub.sorted, vn)
	sub.sorted = slices.Insert(sub.sorted, i, vn)
	return applied()
}

func (s *state) applySchemaTombstone(subject string, ver int64) outcome {
	sub := s.subjects[subject]
	if sub == nil || !validNumber(ver) {
		return applied()
	}
	vn := int(ver)
	cur := sub.versions[vn]
	if cur == nil {
		return applied()
	}
	delete(sub.versions, vn)
	if i, ok := slices.BinarySearch(sub.sorted, vn); ok {
		sub.sorted = slices.Delete(sub.sorted, i, i+1)
	}
	if len(sub.versions) == 0 {
		delete(s.subjects, subject)
	}
	if sc := s.schemas[cur.id]; sc != nil {
		sc.refs--
		if sc.refs <= 0 {
			delete(s.schemas, cur.id)
			delete(s.byCanonical, sc.parsed.canonical)
		}
	}
	return applied()
}

func (s *state) applyConfig(rec logRecord) outcome {
	var level Level
	if !rec.tombstone && rec.config.CompatibilityLevel != nil {
		l, ok := parseLevel(*rec.config.CompatibilityLevel)
		if !ok {
			return ignored(conflictInvalid, "invalid compatibility level %q", *rec.config.CompatibilityLevel)
		}
		level = l
	}
	switch {
	case rec.global:
		s.globalLevel = level
	case level == "":
		delete(s.subjectLevels, rec.subject)
	default:
		s.subjectLevels[rec.subject] = level
	}
	return applied()
}

// applyDeleteSubject handles Confluent's DELETE_SUBJECT records, which soft
// delete every version up to and including the given one. This registry
// does not write them (it soft deletes version by version) but understands
// them in a topic written by Confluent's registry.
func (s *state) applyDeleteSubject(subject string, v *deleteSubjectValueJSON) outcome {
	if sub := s.subjects[subject]; sub != nil {
		for _, vn := range sub.sorted {
			if int64(vn) <= v.Version {
				sub.versions[vn].deleted = true
			}
		}
	}
	return applied()
}

// --- queries ---

// subjectNames lists the subjects with at least one live version, or with
// any version when includeDeleted is set, sorted.
func (s *state) subjectNames(includeDeleted bool) []string {
	names := make([]string, 0, len(s.subjects))
	for name, sub := range s.subjects {
		if includeDeleted || sub.hasLive() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func (sub *subjectState) hasLive() bool {
	for _, v := range sub.versions {
		if !v.deleted {
			return true
		}
	}
	return false
}

// hasSubject reports whether subject has a live version, or any version
// when includeDeleted is set.
func (s *state) hasSubject(subject string, includeDeleted bool) bool {
	sub := s.subjects[subject]
	return sub != nil && (includeDeleted || sub.hasLive())
}

// versions lists the subject's version numbers in ascending order.
func (s *state) versions(subject string, includeDeleted bool) []int {
	sub := s.subjects[subject]
	if sub == nil {
		return nil
	}
	out := make([]int, 0, len(sub.sorted))
	for _, vn := range sub.sorted {
		if includeDeleted || !sub.versions[vn].deleted {
			out = append(out, vn)
		}
	}
	return out
}

// latestVersion is the number used for "latest" or -1 in version paths.
const latestVersion = -1

// getVersion returns a version of subject; vn may be latestVersion. Soft
// deleted versions are only returned when includeDeleted is set.
func (s *state) getVersion(subject string, vn int, includeDeleted bool) *version {
	sub := s.subjects[subject]
	if sub == nil {
		return nil
	}
	if vn == latestVersion {
		for i := len(sub.sorted) - 1; i >= 0; i-- {
			if v := sub.versions[sub.sorted[i]]; includeDeleted || !v.deleted {
				return v
			}
		}
		return nil
	}
	v := sub.versions[vn]
	if v == nil || (v.deleted && !includeDeleted) {
		return nil
	}
	return v
}

// schemaByID returns the schema bound to id, or nil.
func (s *state) schemaByID(id int) *storedSchema { return s.schemas[id] }

// subjectVersionsForID lists the subject/version pairs using schema id,
// sorted by subject then version.
func (s *state) subjectVersionsForID(id int, includeDeleted bool) []*version {
	var out []*version
	for _, sub := range s.subjects {
		for _, v := range sub.versions {
			if v.id == id && (includeDeleted || !v.deleted) {
				out = append(out, v)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].subject != out[j].subject {
			return out[i].subject < out[j].subject
		}
		return out[i].version < out[j].version
	})
	return out
}

// lookup finds the newest version of subject holding the given schema,
// preferring live versions; soft-deleted ones are considered only when
// includeDeleted is set.
func (s *state) lookup(subject string, ps *parsedSchema, includeDeleted bool) *version {
	sub := s.subjects[subject]
	sc := s.byCanonical[ps.canonical]
	if sub == nil || sc == nil {
		return nil
	}
	var deleted *version
	for i := len(sub.sorted) - 1; i >= 0; i-- {
		v := sub.versions[sub.sorted[i]]
		if v.id != sc.id {
			continue
		}
		if !v.deleted {
			return v
		}
		if includeDeleted && deleted == nil {
			deleted = v
		}
	}
	return deleted
}

// level returns the compatibility level in force for subject: its own, the
// global one, or def.
func (s *state) level(subject string, def Level) Level {
	if l, ok := s.subjectLevels[subject]; ok {
		return l
	}
	return s.globalOrDefault(def)
}

func (s *state) globalOrDefault(def Level) Level {
	if s.globalLevel != "" {
		return s.globalLevel
	}
	return def
}

// liveSchemas returns the subject's live versions, oldest first, for
// compatibility checks.
func (s *state) liveSchemas(subject string) []previousSchema {
	sub := s.subjects[subject]
	if sub == nil {
		return nil
	}
	var out []previousSchema
	for _, vn := range sub.sorted {
		v := sub.versions[vn]
		if v.deleted {
			continue
		}
		if sc := s.schemas[v.id]; sc != nil {
			out = append(out, previousSchema{version: vn, id: v.id, schema: sc.parsed.schema})
		}
	}
	return out
}

// registration is what registering a schema in a subject amounts to.
type registration struct {
	// exists is set when the schema is already a live version of the
	// subject: nothing is written and id is returned as is.
	exists bool
	id     int
	// version and text are the new record's version and schema text.
	version int
	text    string
}

// planRegister decides how to register ps in subject, following Confluent:
// an identical live version is reused; otherwise the schema keeps the id it
// has in any subject (or gets a new one) and becomes the version after the
// highest existing one, live or soft-deleted. It returns an incompatibility
// list when the schema breaks the subject's compatibility level with respect
// to the live versions.
func (s *state) planRegister(subject string, ps *parsedSchema, def Level) (registration, []string, error) {
	if v := s.lookup(subject, ps, false); v != nil {
		return registration{exists: true, id: v.id}, nil, nil
	}
	if msgs := checkCompatibility(s.level(subject, def), ps.schema, s.liveSchemas(subject)); len(msgs) > 0 {
		return registration{}, msgs, nil
	}
	reg := registration{text: ps.text}
	if sc := s.byCanonical[ps.canonical]; sc != nil {
		reg.id, reg.text = sc.id, sc.text
	} else {
		if s.maxID >= math.MaxInt32 {
			return registration{}, nil, fmt.Errorf("schema ids exhausted")
		}
		reg.id = s.maxID + 1
	}
	reg.version = 1
	if sub := s.subjects[subject]; sub != nil && len(sub.sorted) > 0 {
		last := sub.sorted[len(sub.sorted)-1]
		if last >= math.MaxInt32 {
			return registration{}, nil, fmt.Errorf("versions of subject %q exhausted", subject)
		}
		reg.version = last + 1
	}
	return reg, nil, nil
}
