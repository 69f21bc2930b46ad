package registry

import (
	"strings"
	"testing"
)

func schemaRec(t *testing.T, subject string, version, id int, schema string, deleted bool) logRecord {
	t.Helper()
	lr, err := decodeRecord(schemaKeyBytes(subject, version), schemaValueBytes(subject, version, id, schema, deleted))
	if err != nil {
		t.Fatal(err)
	}
	return lr
}

func tombstoneRec(t *testing.T, subject string, version int) logRecord {
	t.Helper()
	lr, err := decodeRecord(schemaKeyBytes(subject, version), nil)
	if err != nil {
		t.Fatal(err)
	}
	return lr
}

func configRec(t *testing.T, subject string, global bool, value string) logRecord {
	t.Helper()
	var v []byte
	if value != "" {
		v = []byte(value)
	}
	lr, err := decodeRecord(configKeyBytes(subject, global), v)
	if err != nil {
		t.Fatal(err)
	}
	return lr
}

func expectOutcome(t *testing.T, o outcome, applied bool, kind conflictKind) {
	t.Helper()
	if o.applied != applied || o.conflict != kind {
		t.Fatalf("outcome = %+v, want applied=%v conflict=%v", o, applied, kind)
	}
}

const (
	schemaX = `{"type":"record","name":"X","fields":[{"name":"a","type":"int"}]}`
	schemaY = `{"type":"record","name":"Y","fields":[{"name":"a","type":"int"}]}`
	// schemaXDefault differs from schemaX only by a default, which
	// Parsing Canonical Form ignores but identity must not.
	schemaXDefault = `{"type":"record","name":"X","fields":[{"name":"a","type":"int","default":1}]}`
)

func TestStateFirstRecordWins(t *testing.T) {
	st := newState()
	expectOutcome(t, st.apply(schemaRec(t, "s", 1, 1, schemaX, false)), true, conflictNone)

	// The version is taken: by another id, or by another schema under
	// the same id.
	expectOutcome(t, st.apply(schemaRec(t, "s", 1, 2, schemaY, false)), false, conflictKey)
	expectOutcome(t, st.apply(schemaRec(t, "s", 1, 1, schemaY, false)), false, conflictKey)
	expectOutcome(t, st.apply(schemaRec(t, "s", 1, 1, schemaXDefault, false)), false, conflictKey)
	// The id is taken by another schema.
	expectOutcome(t, st.apply(schemaRec(t, "t", 1, 1, schemaY, false)), false, conflictID)
	// The schema has another id.
	expectOutcome(t, st.apply(schemaRec(t, "t", 1, 5, schemaX, false)), false, conflictID)
	// Restating the same value, even formatted differently, is a no-op.
	expectOutcome(t, st.apply(schemaRec(t, "s", 1, 1, strings.ReplaceAll(schemaX, ",", " , "), false)), true, conflictNone)

	// The same schema with the same id in another subject.
	expectOutcome(t, st.apply(schemaRec(t, "t", 1, 1, schemaX, false)), true, conflictNone)
	if sc := st.schemaByID(1); sc == nil || sc.refs != 2 || sc.text != schemaX {
		t.Fatalf("schema 1 = %+v", sc)
	}
	if st.schemaByID(2) != nil || st.schemaByID(5) != nil || st.maxID != 1 {
		t.Fatal("ignored records left traces in the state")
	}
	if v := st.getVersion("s", 1, false); v == nil || v.id != 1 {
		t.Fatalf("s/1 = %+v", v)
	}
}

func TestStateDeletes(t *testing.T) {
	st := newState()
	st.apply(schemaRec(t, "s", 1, 1, schemaX, false))
	st.apply(schemaRec(t, "s", 2, 2, schemaY, false))
	st.apply(schemaRec(t, "t", 1, 2, schemaY, false))

	// Soft delete, repeated soft delete, and no revival.
	expectOutcome(t, st.apply(schemaRec(t, "s", 1, 1, schemaX, true)), true, conflictNone)
	expectOutcome(t, st.apply(schemaRec(t, "s", 1, 1, schemaX, true)), true, conflictNone)
	expectOutcome(t, st.apply(schemaRec(t, "s", 1, 1, schemaX, false)), false, conflictUndelete)
	if st.getVersion("s", 1, false) != nil || st.getVersion("s", 1, true) == nil {
		t.Fatal("soft-deleted version visibility")
	}
	if v := st.getVersion("s", latestVersion, false); v.version != 2 {
		t.Fatalf("latest = %d", v.version)
	}
	if got := st.versions("s", false); len(got) != 1 || got[0] != 2 {
		t.Fatalf("live versions = %v", got)
	}
	if st.schemaByID(1) == nil {
		t.Fatal("a soft-deleted version's id must still resolve")
	}

	// Permanent deletes unbind ids no version uses any more, but ids are
	// not reused.
	expectOutcome(t, st.apply(tombstoneRec(t, "s", 1)), true, conflictNone)
	if st.schemaByID(1) != nil || st.maxID != 2 {
		t.Fatalf("after tombstone: schema 1 %v, maxID %d", st.schemaByID(1), st.maxID)
	}
	expectOutcome(t, st.apply(tombstoneRec(t, "s", 2)), true, conflictNone)
	if st.hasSubject("s", true) {
		t.Fatal("a subject without versions must disappear")
	}
	if sc := st.schemaByID(2); sc == nil || sc.refs != 1 {
		t.Fatalf("schema 2 still used by t/1: %+v", sc)
	}
	expectOutcome(t, st.apply(tombstoneRec(t, "nope", 3)), true, conflictNone)
	ps, err := parseAvro(schemaX)
	if err != nil {
		t.Fatal(err)
	}
	reg, _, err := st.planRegister("s", ps, LevelBackward)
	if err != nil || reg.exists || reg.id != 3 || reg.version != 1 {
		t.Fatalf("plan after deletes = %+v, %v", reg, err)
	}

	// Confluent's DELETE_SUBJECT record soft deletes up to a version.
	st.apply(schemaRec(t, "u", 1, 3, schemaX, false))
	st.apply(schemaRec(t, "u", 2, 4, schemaXDefault, false))
	st.apply(schemaRec(t, "u", 3, 2, schemaY, false))
	lr, err := decodeRecord([]byte(`{"keytype":"DELETE_SUBJECT","subject":"u","magic":0}`), []byte(`{"subject":"u","version":2}`))
	if err != nil {
		t.Fatal(err)
	}
	expectOutcome(t, st.apply(lr), true, conflictNone)
	if got := st.versions("u", false); len(got) != 1 || got[0] != 3 {
		t.Fatalf("versions after DELETE_SUBJECT = %v", got)
	}
}

func TestStateConfig(t *testing.T) {
	st := newState()
	if st.level("s", LevelBackward) != LevelBackward {
		t.Fatal("default level")
	}
	expectOutcome(t, st.apply(configRec(t, "", true, `{"compatibilityLevel":"FULL"}`)), true, conflictNone)
	expectOutcome(t, st.apply(configRec(t, "s", false, `{"compatibilityLevel":"none"}`)), true, conflictNone)
	if st.level("s", LevelBackward) != LevelNone || st.level("t", LevelBackward) != LevelFull {
		t.Fatal("levels not applied")
	}
	expectOutcome(t, st.apply(configRec(t, "s", false, `{"compatibilityLevel":"SOMETIMES"}`)), false, conflictInvalid)
	if st.level("s", LevelBackward) != LevelNone {
		t.Fatal("an invalid level changed the state")
	}
	expectOutcome(t, st.apply(configRec(t, "s", false, "")), true, conflictNone)
	if st.level("s", LevelBackward) != LevelFull {
		t.Fatal("subject level tombstone")
	}
	// A Confluent config without a compatibility level clears it.
	st.apply(configRec(t, "s", false, `{"compatibilityLevel":"NONE"}`))
	st.apply(configRec(t, "s", false, `{"normalize":true}`))
	if _, ok := st.subjectLevels["s"]; ok {
		t.Fatal("config without a level kept the level")
	}
	expectOutcome(t, st.apply(configRec(t, "", true, "")), true, conflictNone)
	if st.level("t", LevelForward) != LevelForward {
		t.Fatal("global tombstone")
	}
}

func TestStateIgnoresInvalidRecords(t *testing.T) {
	st := newState()
	for name, tc := range map[string]struct{ key, value string }{
		"key/value mismatch": {`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`, `{"subject":"t","version":1,"id":1,"schema":"\"int\""}`},
		"version 0":          {`{"keytype":"SCHEMA","subject":"s","version":0,"magic":1}`, `{"subject":"s","version":0,"id":1,"schema":"\"int\""}`},
		"huge version":       {`{"keytype":"SCHEMA","subject":"s","version":4294967296,"magic":1}`, `{"subject":"s","version":4294967296,"id":1,"schema":"\"int\""}`},
		"id 0":               {`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`, `{"subject":"s","version":1,"id":0,"schema":"\"int\""}`},
		"protobuf":           {`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`, `{"subject":"s","version":1,"id":1,"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";"}`},
		"references":         {`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`, `{"subject":"s","version":1,"id":1,"schema":"\"int\"","references":[{"name":"a","subject":"b","version":1}]}`},
		"bad schema":         {`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`, `{"subject":"s","version":1,"id":1,"schema":"{\"type\":\"nope\"}"}`},
	} {
		lr, err := decodeRecord([]byte(tc.key), []byte(tc.value))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		expectOutcome(t, st.apply(lr), false, conflictInvalid)
	}
	if len(st.subjects) != 0 || len(st.schemas) != 0 || st.maxID != 0 {
		t.Fatal("invalid records changed the state")
	}

	// Undecodable records.
	for _, tc := range []struct{ key, value string }{
		{`not json`, `{}`},
		{`{"keytype":"SCHEMA","subject":"s","magic":1}`, `{}`},
		{`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`, `[1]`},
		{`{"keytype":"CONFIG","subject":"s","magic":0}`, `"x"`},
		{`{"keytype":"DELETE_SUBJECT","magic":0}`, `{}`},
	} {
		if _, err := decodeRecord([]byte(tc.key), []byte(tc.value)); err == nil {
			t.Fatalf("record %s / %s decoded", tc.key, tc.value)
		}
	}
	// Record types this registry does not use are skipped.
	for _, key := range []string{`{"keytype":"NOOP","magic":0}`, `{"keytype":"MODE","subject":null,"magic":0}`} {
		lr, err := decodeRecord([]byte(key), []byte(`{"mode":"READWRITE"}`))
		if err != nil {
			t.Fatal(err)
		}
		expectOutcome(t, st.apply(lr), true, conflictNone)
	}
}

func TestPlanRegister(t *testing.T) {
	st := newState()
	st.apply(schemaRec(t, "s", 1, 1, schemaX, false))
	st.apply(schemaRec(t, "s", 2, 2, schemaY, false))
	st.apply(schemaRec(t, "s", 2, 2, schemaY, true))

	parse := func(s string) *parsedSchema {
		ps, err := parseAvro(s)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	// Already a live version.
	reg, msgs, err := st.planRegister("s", parse(strings.ReplaceAll(schemaX, ":", " : ")), LevelNone)
	if err != nil || len(msgs) != 0 || !reg.exists || reg.id != 1 {
		t.Fatalf("existing: %+v %v %v", reg, msgs, err)
	}
	// Soft-deleted: same id, next version after the highest.
	reg, _, _ = st.planRegister("s", parse(schemaY), LevelNone)
	if reg.exists || reg.id != 2 || reg.version != 3 || reg.text != schemaY {
		t.Fatalf("soft-deleted: %+v", reg)
	}
	// Known in another subject: its id and its stored text.
	reg, _, _ = st.planRegister("t", parse(strings.ReplaceAll(schemaX, ",", " , ")), LevelNone)
	if reg.id != 1 || reg.version != 1 || reg.text != schemaX {
		t.Fatalf("other subject: %+v", reg)
	}
	// New: the next id. A default makes it a different schema.
	reg, _, _ = st.planRegister("t", parse(schemaXDefault), LevelNone)
	if reg.id != 3 || reg.version != 1 {
		t.Fatalf("new: %+v", reg)
	}
	// Incompatible with the live version under BACKWARD: the record
	// names differ.
	_, msgs, _ = st.planRegister("s", parse(schemaY), LevelBackward)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "version 1") {
		t.Fatalf("incompatibility messages = %v", msgs)
	}
}

func TestKeyEncoding(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{string(schemaKeyBytes("a<b>&c", 3)), `{"keytype":"SCHEMA","subject":"a<b>&c","version":3,"magic":1}`},
		{string(configKeyBytes("", true)), `{"keytype":"CONFIG","subject":null,"magic":0}`},
		{string(configKeyBytes("s", false)), `{"keytype":"CONFIG","subject":"s","magic":0}`},
		{string(noopKeyBytes()), `{"keytype":"NOOP","magic":0}`},
		{string(configValueBytes(LevelFull)), `{"compatibilityLevel":"FULL"}`},
		{string(schemaValueBytes("s", 1, 2, `"int"`, true)), `{"subject":"s","version":1,"id":2,"schema":"\"int\"","deleted":true}`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

func TestParseAvroIdentity(t *testing.T) {
	a, err := parseAvro(`{"type":"record","name":"A","namespace":"n","fields":[{"name":"x","type":{"type":"map","values":"long"}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseAvro(` { "fields" : [ { "type" : { "values" : "long", "type" : "map" }, "name" : "x" } ], "name" : "n.A", "type" : "record" } `)
	if err != nil {
		t.Fatal(err)
	}
	if a.canonical != b.canonical {
		t.Fatalf("equivalent schemas differ:\n%s\n%s", a.canonical, b.canonical)
	}
	c, err := parseAvro(`{"type":"record","name":"A","namespace":"n","doc":"docs matter to Confluent too","fields":[{"name":"x","type":{"type":"map","values":"long"}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if a.canonical == c.canonical {
		t.Fatal("a doc change did not change the identity")
	}
	// Named types from earlier parses must not leak into later ones.
	if _, err := parseAvro(`{"type":"record","name":"B","fields":[{"name":"a","type":"n.A"}]}`); err == nil {
		t.Fatal("a reference to a type defined by another schema was accepted")
	}
}
