package testcluster

import (
	"fmt"
	"testing"
)

func TestClusterYAML(t *testing.T) {
	c := Start(t)
	want := fmt.Sprintf(`cluster:
  kafka:
    brokers: [%s]
    compression: none
  schema_registry:
    url: %s
  partitions: 2
  state_dir: /state
  topics:
    sms.inbound: {external: true}
    sms.event: {external: true}
`, c.B.KafkaAddr(), c.B.RegistryURL())
	if got := c.ClusterYAML(2, "/state", "sms.inbound", "sms.event"); got != want {
		t.Errorf("ClusterYAML:\n%s\nwant:\n%s", got, want)
	}
	want = fmt.Sprintf(`cluster:
  kafka:
    brokers: [%s]
    compression: none
  schema_registry:
    url: %s
  partitions: 4
  state_dir: /s
`, c.B.KafkaAddr(), c.B.RegistryURL())
	if got := c.ClusterYAML(4, "/s"); got != want {
		t.Errorf("ClusterYAML without external topics:\n%s\nwant:\n%s", got, want)
	}
}
