package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	userV1 = `{"type":"record","name":"User","namespace":"vumi","fields":[
		{"name":"id","type":"string"}]}`
	// userV1Reformatted is userV1 with other formatting and the namespace
	// folded into the name: the same schema.
	userV1Reformatted = `{ "name" : "vumi.User", "type" : "record",
		"fields" : [ { "type" : "string", "name" : "id" } ] }`
	userAgeDefault = `{"type":"record","name":"User","namespace":"vumi","fields":[
		{"name":"id","type":"string"},{"name":"age","type":"int","default":0}]}`
	userAgeNoDefault = `{"type":"record","name":"User","namespace":"vumi","fields":[
		{"name":"id","type":"string"},{"name":"age","type":"int"}]}`
	messageV1 = `{"type":"record","name":"Message","namespace":"vumi","fields":[
		{"name":"content","type":["null","string"],"default":null}]}`
)

func TestRegisterLookupAndFetch(t *testing.T) {
	c := newCluster(t, "", 0)
	t.Cleanup(c.Close)
	in := startRegistry(t, c, "_schemas")
	cl := in.client

	s1, err := cl.CreateSchema("users-value", userV1, srclient.Avro)
	if err != nil {
		t.Fatalf("CreateSchema: %v", err)
	}
	if s1.ID() != 1 {
		t.Fatalf("first id = %d, want 1", s1.ID())
	}

	// Registering the same schema again, even formatted differently,
	// returns the same id and creates no version.
	for _, text := range []string{userV1, userV1Reformatted} {
		again, err := cl.CreateSchema("users-value", text, srclient.Avro)
		if err != nil {
			t.Fatalf("re-registering: %v", err)
		}
		if again.ID() != s1.ID() {
			t.Fatalf("re-registering gave id %d, want %d", again.ID(), s1.ID())
		}
	}
	versions, err := cl.GetSchemaVersions("users-value")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(versions, []int{1}) {
		t.Fatalf("versions = %v, want [1]", versions)
	}

	// The same schema in another subject gets the same global id.
	other, err := cl.CreateSchema("audit-value", userV1Reformatted, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	if other.ID() != s1.ID() {
		t.Fatalf("same schema in another subject got id %d, want %d", other.ID(), s1.ID())
	}

	// A new compatible version gets a new id and version 2.
	s2, err := cl.CreateSchema("users-value", userAgeDefault, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	if s2.ID() != 2 {
		t.Fatalf("second schema id = %d, want 2", s2.ID())
	}
	msg, err := cl.CreateSchema("messages-value", messageV1, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	if msg.ID() != 3 {
		t.Fatalf("third schema id = %d, want 3", msg.ID())
	}

	// Lookups.
	got, err := cl.LookupSchema("users-value", userV1Reformatted, srclient.Avro)
	if err != nil {
		t.Fatalf("LookupSchema: %v", err)
	}
	if got.ID() != 1 || got.Version() != 1 || got.Schema() != compact(userV1) {
		t.Fatalf("LookupSchema = id %d version %d schema %q", got.ID(), got.Version(), got.Schema())
	}
	byVersion, err := cl.GetSchemaByVersion("users-value", 2)
	if err != nil {
		t.Fatal(err)
	}
	if byVersion.ID() != 2 || byVersion.Version() != 2 || byVersion.Schema() != compact(userAgeDefault) {
		t.Fatalf("GetSchemaByVersion(2) = id %d version %d schema %q", byVersion.ID(), byVersion.Version(), byVersion.Schema())
	}
	latest, err := cl.GetLatestSchema("users-value")
	if err != nil {
		t.Fatal(err)
	}
	if latest.ID() != 2 || latest.Version() != 2 {
		t.Fatalf("GetLatestSchema = id %d version %d, want 2/2", latest.ID(), latest.Version())
	}
	byID, err := cl.GetSchema(3)
	if err != nil {
		t.Fatal(err)
	}
	if byID.Schema() != compact(messageV1) {
		t.Fatalf("GetSchema(3) = %q", byID.Schema())
	}

	subjects, err := cl.GetSubjects()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"audit-value", "messages-value", "users-value"}; !slices.Equal(subjects, want) {
		t.Fatalf("subjects = %v, want %v", subjects, want)
	}
	pairs, err := cl.GetSubjectVersionsById(1)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pairs) != "[{audit-value 1} {users-value 1}]" {
		t.Fatalf("GetSubjectVersionsById(1) = %v", pairs)
	}

	// Not found cases through the client.
	if _, err := cl.GetSchema(99); srCode(t, err) != codeSchemaNotFound {
		t.Fatalf("GetSchema(99): %v", err)
	}
	if _, err := cl.GetLatestSchema("nope"); srCode(t, err) != codeSubjectNotFound {
		t.Fatalf("GetLatestSchema(nope): %v", err)
	}
	if _, err := cl.GetSchemaByVersion("users-value", 7); srCode(t, err) != codeVersionNotFound {
		t.Fatalf("GetSchemaByVersion(7): %v", err)
	}
	if _, err := cl.LookupSchema("users-value", messageV1, srclient.Avro); srCode(t, err) != codeSchemaNotFound {
		t.Fatalf("LookupSchema of an unregistered schema: %v", err)
	}
	if _, err := cl.LookupSchema("nope", userV1, srclient.Avro); srCode(t, err) != codeSubjectNotFound {
		t.Fatalf("LookupSchema in a missing subject: %v", err)
	}
	if _, err := cl.CreateSchema("users-value", `{"type":"record","name":"X"}`, srclient.Avro); srCode(t, err) != codeInvalidSchema {
		t.Fatalf("registering an invalid schema: %v", err)
	}
	if _, err := cl.CreateSchema("users-value", `syntax = "proto3";`, srclient.Protobuf); srCode(t, err) != codeInvalidSchema {
		t.Fatalf("registering a protobuf schema: %v", err)
	}
}

// compact is how srclient sends a schema: newlines replaced by spaces.
func compact(s string) string { return strings.ReplaceAll(s, "\n", " ") }

func TestCompatibilityModes(t *testing.T) {
	c := newCluster(t, "", 0)
	t.Cleanup(c.Close)
	in := startRegistry(t, c, "_schemas")
	cl := in.client

	const (
		ab        = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"string"}]}`
		abDefault = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"string","default":"x"}]}`
		a         = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`
		aLong     = `{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}`
	)
	cases := []struct {
		name      string
		level     srclient.CompatibilityLevel
		previous  []string
		candidate string
		ok        bool
	}{
		{"backward/add field with default", srclient.Backward, []string{a}, abDefault, true},
		{"backward/add field without default", srclient.Backward, []string{a}, ab, false},
		{"backward/remove field", srclient.Backward, []string{ab}, a, true},
		{"forward/remove field with default", srclient.Forward, []string{abDefault}, a, true},
		{"forward/remove field without default", srclient.Forward, []string{ab}, a, false},
		{"forward/add field without default", srclient.Forward, []string{a}, ab, true},
		{"full/add field with default", srclient.Full, []string{a}, abDefault, true},
		{"full/add field without default", srclient.Full, []string{a}, ab, false},
		{"full/remove field without default", srclient.Full, []string{ab}, a, false},
		{"none/change field type", srclient.None, []string{aLong}, `{"type":"string"}`, true},
		// Transitive levels: the candidate is compatible with the
		// latest version but not with the first one.
		{"backward/only checks latest", srclient.Backward, []string{a, abDefault}, ab, true},
		{"backward transitive/checks all", srclient.BackwardTransitive, []string{a, abDefault}, ab, false},
		{"backward transitive/compatible with all", srclient.BackwardTransitive, []string{a, abDefault}, abDefault[:len(abDefault)-2] + `,{"name":"c","type":"int","default":1}]}`, true},
		{"forward/only checks latest", srclient.Forward, []string{ab, abDefault}, a, true},
		{"forward transitive/checks all", srclient.ForwardTransitive, []string{ab, abDefault}, a, false},
		{"full/only checks latest", srclient.Full, []string{ab, abDefault}, a, true},
		{"full transitive/checks all", srclient.FullTransitive, []string{ab, abDefault}, a, false},
		// Type promotion: int data can be read as long, not conversely.
		{"backward/promote int to long", srclient.Backward, []string{`{"type":"int"}`}, `{"type":"long"}`, true},
		{"forward/promote int to long", srclient.Forward, []string{`{"type":"int"}`}, `{"type":"long"}`, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			subject := fmt.Sprintf("compat-%d", i)
			if _, err := cl.ChangeSubjectCompatibilityLevel(subject, srclient.None); err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.previous {
				if _, err := cl.CreateSchema(subject, p, srclient.Avro); err != nil {
					t.Fatalf("registering a previous version: %v", err)
				}
			}
			if _, err := cl.ChangeSubjectCompatibilityLevel(subject, tc.level); err != nil {
				t.Fatal(err)
			}
			ok, err := cl.IsSchemaCompatible(subject, tc.candidate, "latest", srclient.Avro)
			if err != nil {
				t.Fatalf("IsSchemaCompatible: %v", err)
			}
			// Checking against "latest" only looks at the latest
			// version; for transitive levels the registration below
			// is what looks at all of them.
			if !Level(tc.level).transitive() && ok != tc.ok {
				t.Fatalf("IsSchemaCompatible = %v, want %v", ok, tc.ok)
			}
			all := do(t, in.reg.Handler(), http.MethodPost, "/compatibility/subjects/"+subject+"/versions", schemaBody(tc.candidate))
			var check struct {
				IsCompatible bool `json:"is_compatible"`
			}
			mustJSON(t, all.body, &check)
			if check.IsCompatible != tc.ok {
				t.Fatalf("compatibility against all versions = %v, want %v", check.IsCompatible, tc.ok)
			}

			s, err := cl.CreateSchema(subject, tc.candidate, srclient.Avro)
			if tc.ok {
				if err != nil {
					t.Fatalf("registering a compatible schema: %v", err)
				}
				versions, err := cl.GetSchemaVersions(subject)
				if err != nil {
					t.Fatal(err)
				}
				if len(versions) != len(tc.previous)+1 {
					t.Fatalf("versions = %v after registering", versions)
				}
				if s.ID() < 1 {
					t.Fatalf("id = %d", s.ID())
				}
				return
			}
			if code := srCode(t, err); code != codeIncompatibleSchema {
				t.Fatalf("registering an incompatible schema: error code %d (%v), want 409", code, err)
			}
			versions, err := cl.GetSchemaVersions(subject)
			if err != nil {
				t.Fatal(err)
			}
			if len(versions) != len(tc.previous) {
				t.Fatalf("an incompatible schema was registered: versions = %v", versions)
			}
		})
	}
}

func TestCompatibilityEndpoint(t *testing.T) {
	reg := newMemRegistry(t)
	h := reg.Handler()
	if r := do(t, h, http.MethodPost, "/subjects/s/versions", schemaBody(userV1)); r.status != http.StatusOK {
		t.Fatalf("register: %d %s", r.status, r.body)
	}

	// A missing subject is compatible with "latest".
	r := do(t, h, http.MethodPost, "/compatibility/subjects/missing/versions/latest", schemaBody(userV1))
	if r.status != http.StatusOK || string(r.body) != `{"is_compatible":true}` {
		t.Fatalf("missing subject: %d %s", r.status, r.body)
	}
	expectError(t, do(t, h, http.MethodPost, "/compatibility/subjects/missing/versions/1", schemaBody(userV1)), codeSubjectNotFound)
	expectError(t, do(t, h, http.MethodPost, "/compatibility/subjects/s/versions/2", schemaBody(userV1)), codeVersionNotFound)
	expectError(t, do(t, h, http.MethodPost, "/compatibility/subjects/s/versions/zero", schemaBody(userV1)), codeInvalidVersion)
	expectError(t, do(t, h, http.MethodPost, "/compatibility/subjects/s/versions/1", schemaBody(`{"type":"nope"}`)), codeInvalidSchema)

	r = do(t, h, http.MethodPost, "/compatibility/subjects/s/versions/1", schemaBody(userAgeNoDefault))
	if r.status != http.StatusOK || string(r.body) != `{"is_compatible":false}` {
		t.Fatalf("incompatible check: %d %s", r.status, r.body)
	}
	r = do(t, h, http.MethodPost, "/compatibility/subjects/s/versions/1?verbose=true", schemaBody(userAgeNoDefault))
	var verbose struct {
		IsCompatible bool     `json:"is_compatible"`
		Messages     []string `json:"messages"`
	}
	mustJSON(t, r.body, &verbose)
	if verbose.IsCompatible || len(verbose.Messages) != 1 || !strings.Contains(verbose.Messages[0], "age") {
		t.Fatalf("verbose check = %+v", verbose)
	}
	r = do(t, h, http.MethodPost, "/compatibility/subjects/s/versions/latest", schemaBody(userAgeDefault))
	if string(r.body) != `{"is_compatible":true}` {
		t.Fatalf("compatible check: %d %s", r.status, r.body)
	}

	// Registering the incompatible schema is a 409 that says why.
	msg := expectError(t, do(t, h, http.MethodPost, "/subjects/s/versions", schemaBody(userAgeNoDefault)), codeIncompatibleSchema)
	if !strings.Contains(msg, `subject "s"`) || !strings.Contains(msg, "age") {
		t.Fatalf("409 message %q does not explain the incompatibility", msg)
	}
}

func TestConfig(t *testing.T) {
	c := newCluster(t, "", 0)
	t.Cleanup(c.Close)
	in := startRegistry(t, c, "_schemas")
	cl := in.client
	h := in.reg.Handler()

	level, err := cl.GetGlobalCompatibilityLevel()
	if err != nil {
		t.Fatal(err)
	}
	if *level != srclient.Backward {
		t.Fatalf("default global level = %s, want BACKWARD", *level)
	}
	r := do(t, h, http.MethodPut, "/config", `{"compatibility":"full"}`)
	if r.status != http.StatusOK || string(r.body) != `{"compatibility":"FULL"}` {
		t.Fatalf("PUT /config: %d %s", r.status, r.body)
	}
	if level, err = cl.GetGlobalCompatibilityLevel(); err != nil || *level != srclient.Full {
		t.Fatalf("global level = %v, %v; want FULL", level, err)
	}
	if r := do(t, h, http.MethodGet, "/config", ""); string(r.body) != `{"compatibilityLevel":"FULL"}` {
		t.Fatalf("GET /config = %s", r.body)
	}

	// A subject without its own level.
	_, err = cl.GetCompatibilityLevel("orders", false)
	if code := srCode(t, err); code != codeSubjectCompatNotConfigured {
		t.Fatalf("subject level without config: code %d, want 40408", code)
	}
	if level, err = cl.GetCompatibilityLevel("orders", true); err != nil || *level != srclient.Full {
		t.Fatalf("subject level defaulting to global = %v, %v; want FULL", level, err)
	}

	// Its own level.
	set, err := cl.ChangeSubjectCompatibilityLevel("orders", srclient.ForwardTransitive)
	if err != nil || *set != srclient.ForwardTransitive {
		t.Fatalf("ChangeSubjectCompatibilityLevel = %v, %v", set, err)
	}
	if level, err = cl.GetCompatibilityLevel("orders", false); err != nil || *level != srclient.ForwardTransitive {
		t.Fatalf("subject level = %v, %v; want FORWARD_TRANSITIVE", level, err)
	}
	// The subject level governs registration: FORWARD_TRANSITIVE allows
	// adding a field without a default, which FULL forbids.
	if _, err := cl.CreateSchema("orders", userV1, srclient.Avro); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateSchema("orders", userAgeNoDefault, srclient.Avro); err != nil {
		t.Fatalf("registering under the subject's level: %v", err)
	}

	deleted, err := cl.DeleteSubjectCompatibilityLevel("orders")
	if err != nil || *deleted != srclient.ForwardTransitive {
		t.Fatalf("DeleteSubjectCompatibilityLevel = %v, %v", deleted, err)
	}
	_, err = cl.GetCompatibilityLevel("orders", false)
	if code := srCode(t, err); code != codeSubjectCompatNotConfigured {
		t.Fatalf("after delete: code %d, want 40408", code)
	}
	_, err = cl.DeleteSubjectCompatibilityLevel("orders")
	if code := srCode(t, err); code != codeSubjectNotFound {
		t.Fatalf("deleting a missing subject level: code %d, want 40401", code)
	}

	// Invalid levels.
	expectError(t, do(t, h, http.MethodPut, "/config", `{"compatibility":"SIDEWAYS"}`), codeInvalidCompatibility)
	expectError(t, do(t, h, http.MethodPut, "/config/orders", `{"compatibility":""}`), codeInvalidCompatibility)
	expectError(t, do(t, h, http.MethodPut, "/config/orders", `{}`), codeInvalidCompatibility)
	if _, err := cl.ChangeSubjectCompatibilityLevel("orders", "SOMETIMES"); srCode(t, err) != codeInvalidCompatibility {
		t.Fatalf("invalid level through srclient: %v", err)
	}

	// Deleting the global level reverts to the default.
	r = do(t, h, http.MethodDelete, "/config", "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"compatibilityLevel":"FULL"`) {
		t.Fatalf("DELETE /config: %d %s", r.status, r.body)
	}
	if level, err = cl.GetGlobalCompatibilityLevel(); err != nil || *level != srclient.Backward {
		t.Fatalf("global level after delete = %v, %v; want BACKWARD", level, err)
	}
}

func TestDeletes(t *testing.T) {
	c := newCluster(t, "", 0)
	t.Cleanup(c.Close)
	in := startRegistry(t, c, "_schemas")
	cl := in.client
	h := in.reg.Handler()

	for _, s := range []string{userV1, userAgeDefault} {
		if _, err := cl.CreateSchema("users", s, srclient.Avro); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.ChangeSubjectCompatibilityLevel("users", srclient.Full); err != nil {
		t.Fatal(err)
	}

	// Soft delete version 1.
	if err := cl.DeleteSubjectByVersion("users", 1, false); err != nil {
		t.Fatalf("soft delete: %v", err)
	}
	if v, err := cl.GetSchemaVersions("users"); err != nil || !slices.Equal(v, []int{2}) {
		t.Fatalf("versions after soft delete = %v, %v", v, err)
	}
	if _, err := cl.GetSchemaByVersion("users", 1); srCode(t, err) != codeVersionNotFound {
		t.Fatalf("soft-deleted version lookup: %v", err)
	}
	if r := do(t, h, http.MethodGet, "/subjects/users/versions/1?deleted=true", ""); r.status != http.StatusOK {
		t.Fatalf("soft-deleted version with deleted=true: %d %s", r.status, r.body)
	}
	if r := do(t, h, http.MethodGet, "/subjects/users/versions?deleted=true", ""); string(r.body) != "[1,2]" {
		t.Fatalf("versions with deleted=true = %s", r.body)
	}
	// Its id still resolves.
	if s, err := cl.GetSchema(1); err != nil || s.Schema() != compact(userV1) {
		t.Fatalf("id of a soft-deleted version: %v", err)
	}
	expectError(t, do(t, h, http.MethodDelete, "/subjects/users/versions/1", ""), codeVersionSoftDeleted)
	expectError(t, do(t, h, http.MethodDelete, "/subjects/users/versions/2?permanent=true", ""), codeVersionNotSoftDeleted)
	expectError(t, do(t, h, http.MethodDelete, "/subjects/users/versions/9", ""), codeVersionNotFound)
	expectError(t, do(t, h, http.MethodDelete, "/subjects/nobody/versions/1", ""), codeSubjectNotFound)
	expectError(t, do(t, h, http.MethodDelete, "/subjects/users/versions/x", ""), codeInvalidVersion)

	// Permanent delete of a subject needs a soft delete first.
	expectError(t, do(t, h, http.MethodDelete, "/subjects/users?permanent=true", ""), codeSubjectNotSoftDeleted)
	r := do(t, h, http.MethodDelete, "/subjects/users", "")
	if r.status != http.StatusOK || string(r.body) != "[2]" {
		t.Fatalf("soft subject delete: %d %s", r.status, r.body)
	}
	expectError(t, do(t, h, http.MethodDelete, "/subjects/users", ""), codeSubjectSoftDeleted)
	if subjects, err := cl.GetSubjects(); err != nil || len(subjects) != 0 {
		t.Fatalf("subjects after soft delete = %v, %v", subjects, err)
	}
	if subjects, err := cl.GetSubjectsIncludingDeleted(); err != nil || !slices.Equal(subjects, []string{"users"}) {
		t.Fatalf("subjects including deleted = %v, %v", subjects, err)
	}
	if _, err := cl.GetLatestSchema("users"); srCode(t, err) != codeSubjectNotFound {
		t.Fatalf("latest of a soft-deleted subject: %v", err)
	}
	// The soft delete dropped the subject's level, as in Confluent.
	if _, err := cl.GetCompatibilityLevel("users", false); srCode(t, err) != codeSubjectCompatNotConfigured {
		t.Fatalf("subject level after soft delete: %v", err)
	}

	// Re-registering a soft-deleted schema keeps its id and gets a new
	// version after the highest one.
	again, err := cl.CreateSchema("users", userV1, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID() != 1 {
		t.Fatalf("re-registered id = %d, want 1", again.ID())
	}
	if v, err := cl.GetSchemaVersions("users"); err != nil || !slices.Equal(v, []int{3}) {
		t.Fatalf("versions after re-registering = %v, %v", v, err)
	}

	// srclient's permanent version delete soft deletes, then hard deletes.
	if err := cl.DeleteSubjectByVersion("users", 3, true); err != nil {
		t.Fatalf("permanent version delete: %v", err)
	}
	if r := do(t, h, http.MethodGet, "/subjects/users/versions?deleted=true", ""); string(r.body) != "[1,2]" {
		t.Fatalf("versions after permanent delete = %s", r.body)
	}
	if err := cl.DeleteSubject("users", true); err != nil {
		t.Fatalf("permanent subject delete: %v", err)
	}
	if subjects, err := cl.GetSubjectsIncludingDeleted(); err != nil || len(subjects) != 0 {
		t.Fatalf("subjects after permanent delete = %v, %v", subjects, err)
	}
	// Nothing uses the schemas any more: their ids are gone.
	for _, id := range []int{1, 2} {
		if _, err := cl.GetSchema(id); srCode(t, err) != codeSchemaNotFound {
			t.Fatalf("id %d after permanent delete: %v", id, err)
		}
	}
	expectError(t, do(t, h, http.MethodDelete, "/subjects/users?permanent=true", ""), codeSubjectNotFound)

	// A permanently deleted subject starts again from version 1, and ids
	// are not reused.
	s, err := cl.CreateSchema("users", userAgeNoDefault, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != 3 {
		t.Fatalf("id after permanent deletes = %d, want 3", s.ID())
	}
	if v, err := cl.GetSchemaVersions("users"); err != nil || !slices.Equal(v, []int{1}) {
		t.Fatalf("versions = %v, %v", v, err)
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	c := newCluster(t, dir, 0)
	t.Cleanup(c.Close) // idempotent; the test closes it earlier
	port := clusterPort(t, c)
	in := startRegistry(t, c, "_schemas")

	want := map[string]int{}
	for subject, schema := range map[string]string{"a": userV1, "b": userV1, "c": messageV1} {
		s, err := in.client.CreateSchema(subject, schema, srclient.Avro)
		if err != nil {
			t.Fatal(err)
		}
		want[subject] = s.ID()
	}
	if _, err := in.client.CreateSchema("a", userAgeDefault, srclient.Avro); err != nil {
		t.Fatal(err)
	}
	if _, err := in.client.ChangeSubjectCompatibilityLevel("c", srclient.None); err != nil {
		t.Fatal(err)
	}
	if err := in.client.DeleteSubjectByVersion("b", 1, false); err != nil {
		t.Fatal(err)
	}
	before := dumpState(in.reg)

	in.close()
	c.Close()

	c2 := newCluster(t, dir, port)
	t.Cleanup(c2.Close)
	in2 := startRegistry(t, c2, "_schemas")
	if after := dumpState(in2.reg); after != before {
		t.Fatalf("state after restart differs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for subject, id := range want {
		versions, err := in2.client.GetSchemaVersions(subject)
		if subject == "b" {
			if srCode(t, err) != codeSubjectNotFound {
				t.Fatalf("soft-deleted subject b: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		s, err := in2.client.GetSchemaByVersion(subject, 1)
		if err != nil {
			t.Fatal(err)
		}
		if s.ID() != id {
			t.Fatalf("subject %s version 1 has id %d after restart, want %d", subject, s.ID(), id)
		}
		if subject == "a" && !slices.Equal(versions, []int{1, 2}) {
			t.Fatalf("subject a versions after restart = %v", versions)
		}
	}
	if level, err := in2.client.GetCompatibilityLevel("c", false); err != nil || *level != srclient.None {
		t.Fatalf("subject level after restart = %v, %v", level, err)
	}
	// New registrations continue the id sequence.
	s, err := in2.client.CreateSchema("d", userAgeNoDefault, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != 4 {
		t.Fatalf("id after restart = %d, want 4", s.ID())
	}
}

func TestTwoInstances(t *testing.T) {
	c := newCluster(t, "", 0)
	t.Cleanup(c.Close)
	a := startRegistry(t, c, "shared_schemas")
	b := startRegistry(t, c, "shared_schemas")

	s, err := a.client.CreateSchema("users", userV1, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	// B tails the topic and sees A's write.
	eventually(t, func() error {
		got, err := b.client.GetLatestSchema("users")
		if err != nil {
			return err
		}
		if got.ID() != s.ID() || got.Schema() != compact(userV1) {
			return fmt.Errorf("B sees id %d schema %q", got.ID(), got.Schema())
		}
		return nil
	})
	// The same schema registered through B in another subject gets A's id.
	sb, err := b.client.CreateSchema("people", userV1Reformatted, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	if sb.ID() != s.ID() {
		t.Fatalf("B assigned id %d to A's schema, want %d", sb.ID(), s.ID())
	}
	// B's writes are numbered after A's: B syncs with the topic first.
	sb2, err := b.client.CreateSchema("users", userAgeDefault, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	if sb2.ID() != 2 {
		t.Fatalf("B's new schema id = %d, want 2", sb2.ID())
	}
	if _, err := b.client.ChangeSubjectCompatibilityLevel("users", srclient.None); err != nil {
		t.Fatal(err)
	}

	// Concurrent registrations on both instances: every one succeeds and
	// both instances end up with the same state.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		in := a
		if i%2 == 1 {
			in = b
		}
		wg.Go(func() {
			schema := fmt.Sprintf(`{"type":"record","name":"R%d","fields":[{"name":"f","type":"int"}]}`, i)
			if _, err := in.client.CreateSchema("users", schema, srclient.Avro); err != nil {
				errs <- fmt.Errorf("registering R%d: %w", i, err)
			}
			if _, err := in.client.CreateSchema(fmt.Sprintf("own-%d", i), schema, srclient.Avro); err != nil {
				errs <- fmt.Errorf("registering R%d in its own subject: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Sync B with the topic, then compare.
	if err := b.reg.kl.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.reg.kl.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	da, db := dumpState(a.reg), dumpState(b.reg)
	if da != db {
		t.Fatalf("instances disagree:\nA:\n%s\nB:\n%s", da, db)
	}
	versions, err := a.client.GetSchemaVersions("users")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(versions, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("users versions = %v", versions)
	}
	// Each schema has one id, the same in both of its subjects.
	for i := range 8 {
		own, err := a.client.GetLatestSchema(fmt.Sprintf("own-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		lookedUp, err := b.client.LookupSchema("users", own.Schema(), srclient.Avro)
		if err != nil {
			t.Fatal(err)
		}
		if lookedUp.ID() != own.ID() {
			t.Fatalf("R%d has id %d in its own subject and %d in users", i, own.ID(), lookedUp.ID())
		}
	}
}

func TestBasicAuth(t *testing.T) {
	c := newCluster(t, "", 0)
	t.Cleanup(c.Close)
	in := startRegistry(t, c, "_schemas", func(cfg *Config) {
		cfg.Username, cfg.Password = "vumi", "s3cret"
	})

	// No credentials.
	if _, err := in.client.GetSubjects(); srCode(t, err) != codeUnauthorized {
		t.Fatalf("no credentials: %v", err)
	}
	// Wrong credentials.
	for _, creds := range [][2]string{{"vumi", "wrong"}, {"other", "s3cret"}, {"vumi", "s3cret "}} {
		in.client.SetCredentials(creds[0], creds[1])
		if _, err := in.client.CreateSchema("x", userV1, srclient.Avro); srCode(t, err) != codeUnauthorized {
			t.Fatalf("credentials %v: %v", creds, err)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, in.url()+"/subjects", nil)
	req.SetBasicAuth("vumi", "nope")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("wrong credentials: status %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// Right credentials.
	in.client.SetCredentials("vumi", "s3cret")
	s, err := in.client.CreateSchema("x", userV1, srclient.Avro)
	if err != nil {
		t.Fatalf("with credentials: %v", err)
	}
	if got, err := in.client.GetSchema(s.ID()); err != nil || got.Schema() != compact(userV1) {
		t.Fatalf("GetSchema with credentials: %v", err)
	}

	// The health check needs no credentials.
	resp, err = http.Get(in.url() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}

// TestLostRaceIsRetriedAndCompactionSafe makes a registration lose a race:
// another writer takes the version it planned to write just before it
// writes. The registration must be retried with fresh numbers, and the
// topic must read the same after log compaction.
func TestLostRaceIsRetriedAndCompactionSafe(t *testing.T) {
	c := newCluster(t, "", 0)
	t.Cleanup(c.Close)
	in := startRegistry(t, c, "_schemas")
	if _, err := in.client.ChangeSubjectCompatibilityLevel("s", srclient.None); err != nil {
		t.Fatal(err)
	}

	other, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var once sync.Once
	hook := func() {
		once.Do(func() {
			// The competing writer registers messageV1 as s/1 with
			// id 1, which is what our writer planned for userV1.
			rec := schemaRecord("s", 1, 1, messageV1, false)
			rec.Topic = "_schemas"
			if err := other.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
				t.Error(err)
			}
		})
	}
	in.reg.testHookBeforeWrite.Store(&hook)
	s, err := in.client.CreateSchema("s", userV1, srclient.Avro)
	in.reg.testHookBeforeWrite.Store(nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != 2 {
		t.Fatalf("id after a lost race = %d, want 2", s.ID())
	}
	v1, err := in.client.GetSchemaByVersion("s", 1)
	if err != nil || v1.ID() != 1 || v1.Schema() != messageV1 {
		t.Fatalf("version 1 = %v, %v; want the competing writer's schema", v1, err)
	}
	v2, err := in.client.GetSchemaByVersion("s", 2)
	if err != nil || v2.ID() != 2 {
		t.Fatalf("version 2 = %v, %v", v2, err)
	}
	before := dumpState(in.reg)

	// Compaction keeps the last record of each key. Our ignored record
	// for s/1 was restated by the winning value, so a fresh instance
	// reading the compacted topic sees the same state.
	c.Compact()
	fresh := startRegistry(t, c, "_schemas")
	if after := dumpState(fresh.reg); after != before {
		t.Fatalf("state after compaction differs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestTopicChecks(t *testing.T) {
	c := newCluster(t, "", 0)
	t.Cleanup(c.Close)
	ctx := context.Background()

	_, err := New(ctx, Config{Brokers: c.ListenAddrs(), Topic: "missing", DisableTopicCreation: true, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing topic with creation disabled: %v", err)
	}

	admin, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	createTopic(t, admin, "three_partitions", 3, "compact")
	createTopic(t, admin, "not_compacted", 1, "delete")

	_, err = New(ctx, Config{Brokers: c.ListenAddrs(), Topic: "three_partitions", Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "3 partitions") {
		t.Fatalf("topic with 3 partitions: %v", err)
	}
	_, err = New(ctx, Config{Brokers: c.ListenAddrs(), Topic: "not_compacted", Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "cleanup.policy=delete") {
		t.Fatalf("topic that is not compacted: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	err := (&Config{
		Topic:                "bad topic",
		Username:             "only-user",
		DefaultCompatibility: "SIDEWAYS",
		DisableTopicCreation: true,
		ReplicationFactor:    3,
		WriteTimeout:         -1,
	}).validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"Brokers is required", "Topic", "Username and Password", "DefaultCompatibility",
		"DisableTopicCreation", "WriteTimeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	cfg := Config{Brokers: []string{"localhost:9092"}, DefaultCompatibility: "full_transitive"}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Topic != DefaultTopic || cfg.DefaultCompatibility != LevelFullTransitive || cfg.ReplicationFactor != -1 ||
		cfg.WriteTimeout != defaultWriteTimeout || cfg.Logger == nil || cfg.MaxRequestBytes != defaultMaxRequestBytes {
		t.Fatalf("defaults not filled in: %+v", cfg)
	}
}

func TestServeAndClose(t *testing.T) {
	c := newCluster(t, "", 0)
	t.Cleanup(c.Close)
	reg, err := New(context.Background(), Config{Brokers: c.ListenAddrs(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- reg.Serve(ln) }()

	cl := srclient.NewSchemaRegistryClient("http://" + ln.Addr().String())
	s, err := cl.CreateSchema("over-tcp", userV1, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cl.GetSchema(s.ID()); err != nil || got.Schema() != compact(userV1) {
		t.Fatalf("GetSchema over TCP: %v", err)
	}

	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want http.ErrServerClosed", err)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Serve(ln2); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve after Close returned %v", err)
	}
}

// TestKafkaDown checks that reads keep working from memory when Kafka goes
// away, and that writes fail with a timeout instead of hanging.
func TestKafkaDown(t *testing.T) {
	c := newCluster(t, "", 0)
	in := startRegistry(t, c, "_schemas", func(cfg *Config) { cfg.WriteTimeout = 500 * time.Millisecond })
	h := in.reg.Handler()
	if r := do(t, h, http.MethodPost, "/subjects/s/versions", schemaBody(userV1)); r.status != http.StatusOK {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	c.Close()

	if r := do(t, h, http.MethodGet, "/subjects/s/versions/latest", ""); r.status != http.StatusOK {
		t.Fatalf("read with Kafka down: %d %s", r.status, r.body)
	}
	// Concurrent writes queue for the instance's write lock; each gives
	// up at its own deadline rather than after the writes ahead of it.
	start := time.Now()
	var wg sync.WaitGroup
	responses := make(chan response, 4)
	for range 4 {
		wg.Go(func() {
			req := httptest.NewRequest(http.MethodPost, "/subjects/s/versions", strings.NewReader(schemaBody(userAgeDefault)))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			responses <- response{status: rec.Code, body: rec.Body.Bytes()}
		})
	}
	wg.Wait()
	close(responses)
	for r := range responses {
		expectError(t, r, codeOperationTimeout)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("writes with Kafka down took %v; each should give up after 500ms", d)
	}
}
