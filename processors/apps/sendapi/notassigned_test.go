package sendapi

import (
	"errors"
	"testing"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/tester"
)

// TestNotAssignedError pins the error goka's Processor.Get returns for a
// key whose partition the processor does not hold (a processor that has
// not joined its group holds none), which the API answers from its view,
// apart from real storage errors, which it reports.
func TestNotAssignedError(t *testing.T) {
	tt := tester.New(t)
	g := goka.DefineGroup("api", goka.Input("api.sends", new(gokacodec.Bytes), func(goka.Context, any) {}), goka.Persist(new(gokacodec.Bytes)))
	p, err := goka.NewProcessor(nil, g, goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Get("some-message-id")
	if err == nil || !isNotAssigned(err) {
		t.Fatalf("Get on a processor holding no partition: %v, not recognised as 'partition not assigned here'", err)
	}
	for _, real := range []error{errors.New("error getting k: leveldb: closed"), errors.New("error decoding k: bad")} {
		if isNotAssigned(real) {
			t.Errorf("%v taken for 'partition not assigned here'", real)
		}
	}
	if isNotAssigned(nil) {
		t.Error("nil taken for an error")
	}
}
