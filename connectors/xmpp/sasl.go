package xmpp

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// mechanism is one SASL client mechanism: Start gives the initial
// response, Next answers each challenge, Verify checks the data of the
// server's success.
type mechanism interface {
	Name() string
	Start() ([]byte, error)
	Next(challenge []byte) ([]byte, error)
	Verify(success []byte) error
}

// supportedMechanisms in order of preference.
var supportedMechanisms = []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}

func newMechanism(name, user, password string) (mechanism, error) {
	switch name {
	case "PLAIN":
		return &plain{user: user, password: password}, nil
	case "SCRAM-SHA-1":
		return &scram{name: name, h: sha1.New, user: user, password: password}, nil
	case "SCRAM-SHA-256":
		return &scram{name: name, h: sha256.New, user: user, password: password}, nil
	}
	return nil, fmt.Errorf("unsupported SASL mechanism %q", name)
}

// plain is RFC 4616.
type plain struct{ user, password string }

func (p *plain) Name() string { return "PLAIN" }
func (p *plain) Start() ([]byte, error) {
	return []byte("\x00" + p.user + "\x00" + p.password), nil
}
func (p *plain) Next([]byte) ([]byte, error) { return nil, errors.New("PLAIN: unexpected challenge") }
func (p *plain) Verify([]byte) error         { return nil }

// scram is RFC 5802 without channel binding.
type scram struct {
	name           string
	h              func() hash.Hash
	user, password string

	nonce       string
	clientFirst string // client-first-message-bare
	serverSig   []byte
	step        int
}

func (s *scram) Name() string { return s.name }

func (s *scram) Start() ([]byte, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	s.nonce = base64.RawStdEncoding.EncodeToString(b)
	s.clientFirst = "n=" + saslName(s.user) + ",r=" + s.nonce
	return []byte("n,," + s.clientFirst), nil
}

func saslName(u string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(u)
}

func scramAttrs(msg string) map[byte]string {
	out := map[byte]string{}
	for _, kv := range strings.Split(msg, ",") {
		if len(kv) >= 2 && kv[1] == '=' {
			out[kv[0]] = kv[2:]
		}
	}
	return out
}

func (s *scram) Next(challenge []byte) ([]byte, error) {
	if s.step == 1 {
		// Some servers send server-final as a challenge, not in success.
		s.step++
		return []byte{}, s.Verify(challenge)
	}
	if s.step != 0 {
		return nil, fmt.Errorf("%s: unexpected challenge", s.name)
	}
	s.step++
	serverFirst := string(challenge)
	a := scramAttrs(serverFirst)
	if e, ok := a['e']; ok {
		return nil, fmt.Errorf("%s: server error %q", s.name, e)
	}
	nonce, saltB64, iterS := a['r'], a['s'], a['i']
	if !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce) {
		return nil, fmt.Errorf("%s: server nonce does not extend ours", s.name)
	}
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	if err != nil || len(salt) == 0 {
		return nil, fmt.Errorf("%s: bad salt", s.name)
	}
	iter, err := strconv.Atoi(iterS)
	if err != nil || iter < 1 || iter > 1_000_000 {
		return nil, fmt.Errorf("%s: bad iteration count %q", s.name, iterS)
	}
	size := s.h().Size()
	salted, err := pbkdf2.Key(s.h, s.password, salt, iter, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	clientKey := s.hmac(salted, "Client Key")
	hh := s.h()
	hh.Write(clientKey)
	storedKey := hh.Sum(nil)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte("n,,")) + ",r=" + nonce
	authMessage := s.clientFirst + "," + serverFirst + "," + withoutProof
	clientSig := s.hmac(storedKey, authMessage)
	proof := make([]byte, size)
	for i := range proof {
		proof[i] = clientKey[i] ^ clientSig[i]
	}
	s.serverSig = s.hmac(s.hmac(salted, "Server Key"), authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (s *scram) hmac(key []byte, msg string) []byte {
	m := hmac.New(s.h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (s *scram) Verify(success []byte) error {
	if len(success) == 0 && s.step == 2 {
		return nil // verified in the challenge already
	}
	if s.serverSig == nil {
		return fmt.Errorf("%s: success before the proof was sent", s.name)
	}
	v, ok := scramAttrs(string(success))['v']
	if !ok {
		return fmt.Errorf("%s: server sent no signature", s.name)
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil || subtle.ConstantTimeCompare(got, s.serverSig) != 1 {
		return fmt.Errorf("%s: server signature does not verify (not the server we know?)", s.name)
	}
	return nil
}
