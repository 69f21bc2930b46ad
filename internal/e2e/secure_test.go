package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/vumi-kafka/vumi/schemas/registry"
)

// testCA makes a CA and a server certificate for 127.0.0.1, and writes the
// CA to a PEM file.
func testCA(t *testing.T) (server tls.Certificate, pool *x509.CertPool, caFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vumi test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	server = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return server, pool, caFile
}

// TestSecureKafka runs the telnet demo against a broker that requires TLS
// and SASL, for each mechanism: the transport (franz-go), the application
// (goka, through sarama) and the registry's own clients all have to
// authenticate over TLS for the echo to come back.
func TestSecureKafka(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			cert, pool, caFile := testCA(t)
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
				kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
				kfake.EnableSASL(), kfake.Superuser(mech, "vumi", "s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cluster.Close) // cleanups run last-in first-out: after the deployment stops
			addr := cluster.ListenAddrs()[0]

			// Without credentials nothing works.
			bare, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(&tls.Config{RootCAs: pool}), kgo.RequestRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := bare.Ping(ctx); err == nil {
				t.Error("a client without SASL credentials could talk to the broker")
			}
			cancel()
			bare.Close()

			var saslOpt kgo.Opt
			switch mech {
			case "PLAIN":
				saslOpt = kgo.SASL(plain.Auth{User: "vumi", Pass: "s3cret"}.AsMechanism())
			case "SCRAM-SHA-256":
				saslOpt = kgo.SASL(scram.Auth{User: "vumi", Pass: "s3cret"}.AsSha256Mechanism())
			default:
				saslOpt = kgo.SASL(scram.Auth{User: "vumi", Pass: "s3cret"}.AsSha512Mechanism())
			}
			rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
			reg, err := registry.New(rctx, registry.Config{Brokers: []string{addr},
				KafkaOpts: []kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: pool}), saslOpt}})
			rcancel()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = reg.Close() })
			regSrv := httptest.NewServer(reg.Handler())
			t.Cleanup(regSrv.Close)

			port := freePort(t)
			cfg := fmt.Sprintf(`cluster:
  kafka:
    brokers: [%s]
    tls: {enabled: true, ca_file: %s}
    sasl: {mechanism: %s, username: vumi, password: "${KAFKA_PASSWORD}"}
  schema_registry: {url: %s}
  partitions: 2
  state_dir: %s
workers:
  - name: telnet_transport
    kind: telnet
    transport_name: telnet
    twisted_endpoint: tcp:port=%d:interface=127.0.0.1
  - name: echo
    kind: echo
    transport_name: telnet
`, addr, caFile, mech, regSrv.URL, t.TempDir(), port)
			t.Setenv("KAFKA_PASSWORD", "s3cret")
			runConfig(t, cfg)
			conn := dial(t, fmt.Sprintf("127.0.0.1:%d", port))
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
			r := newLineReader(conn)
			if got := readLine(t, r); got != "Enter text to echo:" {
				t.Fatalf("help = %q", got)
			}
			if _, err := conn.Write([]byte("over tls\n")); err != nil {
				t.Fatal(err)
			}
			if got := readLine(t, r); got != "over tls" {
				t.Fatalf("echo = %q", got)
			}
		})
	}
}
