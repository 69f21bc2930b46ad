package tables

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestExpiring(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	e := NewExpiring([]byte("msg-1"), time.Hour, now)
	b, err := ExpiringCodec.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ExpiringCodec.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(*Expiring)
	if !got.Expires.Equal(now.Add(time.Hour)) || !bytes.Equal(got.Value, []byte("msg-1")) {
		t.Errorf("round trip: %+v", got)
	}
	if got.Expired(now.Add(59*time.Minute)) || !got.Expired(now.Add(time.Hour)) {
		t.Error("expiry boundary wrong")
	}
	forever := NewExpiring([]byte("x"), 0, now)
	b, _ = forever.MarshalBinary()
	var back Expiring
	if err := back.UnmarshalBinary(b); err != nil || !back.Expires.IsZero() || back.Expired(now.Add(100*365*24*time.Hour)) {
		t.Errorf("never-expiring entry: %+v %v", back, err)
	}
	if err := back.UnmarshalBinary([]byte{1, 2}); !errors.Is(err, ErrShortEntry) {
		t.Errorf("short entry: %v", err)
	}
}

func TestJSONCodec(t *testing.T) {
	type group struct{ Name string }
	c := Codec[group]{}
	b, err := c.Encode(group{Name: "g1"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Decode(b)
	if err != nil || v.(*group).Name != "g1" {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := c.Encode(42); err == nil {
		t.Error("encoding the wrong type should fail")
	}
	if _, err := c.Decode([]byte("{")); err == nil {
		t.Error("decoding garbage should fail")
	}
}
