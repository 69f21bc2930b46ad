package smpp

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vumi-kafka/vumi/connectors/smpp/coding"
	"github.com/vumi-kafka/vumi/connectors/smpp/pdu"
	"github.com/vumi-kafka/vumi/connectors/transport"
	"github.com/vumi-kafka/vumi/internal/endpoint"
	"github.com/vumi-kafka/vumi/schemas"
	"github.com/vumi-kafka/vumi/topology"
)

// Bind types.
const (
	bindTransceiver = "transceiver"
	bindTransmitter = "transmitter"
	bindReceiver    = "receiver"
	bindTxRx        = "tx_rx" // a transmitter and a receiver bind
)

// Config is the SMPP transport's config: vumi2's SmppTransceiverTransport
// keys, Vumi 0.x's keys vumi2 dropped (mt_tps, throttle_delay, reconnect,
// disable_ack, operator prefixes), and the bind type and window.
type Config struct {
	transport.Config `yaml:",inline"`

	// TwistedEndpoint is the SMSC to connect to, e.g. "tcp:host=smsc:port=2775"
	// (Vumi 0.x); host and port are vumi2's alternative.
	TwistedEndpoint string `yaml:"twisted_endpoint"`
	// Host of the SMSC; default localhost (with port 2775).
	Host string `yaml:"host"`
	// Port of the SMSC; default 2775.
	Port int `yaml:"port"`

	// BindType is transceiver (default), transmitter, receiver, or tx_rx
	// for a transmitter and a receiver bind held together.
	BindType string `yaml:"bind_type"`
	// SystemID identifies the ESME; at most 15 ASCII characters. Required.
	SystemID string `yaml:"system_id"`
	// Password of the ESME; at most 8 ASCII characters. Required.
	Password string `yaml:"password"`
	// SystemType; at most 12 ASCII characters. Default empty.
	SystemType string `yaml:"system_type"`
	// InterfaceVersion: 34 (default) for SMPP 3.4, 0-33 for 3.3 or earlier.
	InterfaceVersion FlexInt `yaml:"interface_version"`
	// AddressRange served by the ESME; at most 40 ASCII characters.
	AddressRange string `yaml:"address_range"`

	// SmppBindTimeout in seconds to wait for a bind response; default 30.
	SmppBindTimeout int `yaml:"smpp_bind_timeout"`
	// SmppEnquireLinkInterval in seconds between enquire_links; default 55.
	SmppEnquireLinkInterval int `yaml:"smpp_enquire_link_interval"`
	// InitialReconnectDelay in seconds before the first reconnection
	// attempt; it doubles up to MaxReconnectDelay. Default 5.
	InitialReconnectDelay int `yaml:"initial_reconnect_delay"`
	// MaxReconnectDelay in seconds; default 60.
	MaxReconnectDelay int `yaml:"max_reconnect_delay"`
	// ThrottleDelay in seconds before retrying after ESME_RTHROTTLED or
	// ESME_RMSGQFUL; default 0.1.
	ThrottleDelay float64 `yaml:"throttle_delay"`
	// MtTps is the most outbound messages put on the wire per second; 0
	// (default) means no limit.
	MtTps int `yaml:"mt_tps"`
	// WindowSize is the most submit_sm without a submit_sm_resp per bind;
	// default 32.
	WindowSize int `yaml:"window_size"`
	// SmppResponseTimeout in seconds to wait for any response; default 60.
	SmppResponseTimeout int `yaml:"smpp_response_timeout"`
	// DeliverSmDecodingError is the status returned for a deliver_sm whose
	// text cannot be decoded; default ESME_RDELIVERYFAILURE.
	DeliverSmDecodingError string `yaml:"deliver_sm_decoding_error"`
	// DisableAck stops ack events; default false.
	DisableAck bool `yaml:"disable_ack"`
	// DisableDeliveryReport stops delivery_report events (ids are still
	// tracked); default false.
	DisableDeliveryReport bool `yaml:"disable_delivery_report"`
	// TransportType of inbound SMS; default sms (USSD is always ussd).
	TransportType string `yaml:"transport_type"`

	SubmitSmProcessorClass  string             `yaml:"submit_sm_processor_class"`
	SubmitSmProcessorConfig SubmitConfig       `yaml:"submit_sm_processor_config"`
	SmProcessorClass        string             `yaml:"sm_processor_class"`
	SmProcessorConfig       ShortMessageConfig `yaml:"sm_processor_config"`
	DrProcessorClass        string             `yaml:"dr_processor_class"`
	DrProcessorConfig       DRConfig           `yaml:"dr_processor_config"`
	SmppCacheClass          string             `yaml:"smpp_cache_class"`
	SmppCacheConfig         CacheConfig        `yaml:"smpp_cache_config"`

	// CountryCode, OperatorPrefix and OperatorNumber choose the source
	// address of outbound messages by the recipient's operator (Vumi's
	// COUNTRY_CODE, OPERATOR_PREFIX, OPERATOR_NUMBER).
	CountryCode    string            `yaml:"COUNTRY_CODE"`
	OperatorPrefix PrefixMap         `yaml:"OPERATOR_PREFIX"`
	OperatorNumber map[string]string `yaml:"OPERATOR_NUMBER"`

	addr    string
	drRegex *regexp.Regexp
	// defaultDRRegex: the regex is DefaultDRRegex, matched by
	// parseDefaultDR instead.
	defaultDRRegex bool
	codecs         coding.Table
	decodingError  pdu.Status
	submitProc     string // default, sixdee, mica
	smProc         string
}

// SubmitConfig is submit_sm_processor_config.
type SubmitConfig struct {
	// DataCoding of outbound messages: a name (SMSC_DEFAULT_ALPHABET,
	// IA5_ASCII, LATIN_1, JIS, CYRILLIC, ISO_8859_8, UCS2) or number.
	// Default SMSC_DEFAULT_ALPHABET (GSM 03.38).
	DataCoding string `yaml:"data_coding"`
	// MultipartHandling: short_message (default), message_payload,
	// multipart_sar or multipart_udh.
	MultipartHandling string `yaml:"multipart_handling"`
	// ServiceType of submit_sm; default empty.
	ServiceType   string     `yaml:"service_type"`
	SourceAddrTON EnumByte   `yaml:"source_addr_ton"`
	SourceAddrNPI EnumByte   `yaml:"source_addr_npi"`
	DestAddrTON   EnumByte   `yaml:"dest_addr_ton"`
	DestAddrNPI   *EnumByte  `yaml:"dest_addr_npi"`
	Registered    RegDeliver `yaml:"registered_delivery"`
	// MultipartSarReferenceRollover: SAR references count modulo this;
	// default 0x10000.
	MultipartSarReferenceRollover int `yaml:"multipart_sar_reference_rollover"`
	// MaxSessionLength in seconds of a USSD session's state (6D and Mica
	// processors); default 180.
	MaxSessionLength int `yaml:"max_session_length"`

	dataCoding byte
}

// RegDeliver is registered_delivery.
type RegDeliver struct {
	// DeliveryReceipt: NO_SMSC_DELIVERY_RECEIPT_REQUESTED (default),
	// SMSC_DELIVERY_RECEIPT_REQUESTED,
	// SMSC_DELIVERY_RECEIPT_REQUESTED_FOR_FAILURE, or 0-2.
	DeliveryReceipt EnumByte `yaml:"delivery_receipt"`
	// SmeOriginatedAcks: SME_DELIVERY_ACK_REQUESTED and/or
	// SME_MANUAL_ACK_REQUESTED.
	SmeOriginatedAcks []EnumByte `yaml:"sme_originated_acks"`
	// IntermediateNotification requests intermediate notifications.
	IntermediateNotification bool `yaml:"intermediate_notification"`
}

// Byte returns the registered_delivery octet.
func (r RegDeliver) Byte() byte {
	b := byte(r.DeliveryReceipt) & 0x03
	for _, a := range r.SmeOriginatedAcks {
		b |= (byte(a) & 0x03) << 2
	}
	if r.IntermediateNotification {
		b |= 0x10
	}
	return b
}

// ShortMessageConfig is sm_processor_config.
type ShortMessageConfig struct {
	// DataCodingOverrides maps a data_coding (number or name) to a codec
	// name (ascii, latin1, utf-16be, gsm0338, ...).
	DataCodingOverrides map[string]string `yaml:"data_coding_overrides"`
	// MaxSessionLength in seconds (6D and Mica); default 180.
	MaxSessionLength int `yaml:"max_session_length"`
	// UssdCodePduField is where 6D puts the dialled code: short_message
	// (default) or destination_addr.
	UssdCodePduField string `yaml:"ussd_code_pdu_field"`
}

// DRConfig is dr_processor_config.
type DRConfig struct {
	// Regex matches a delivery receipt's text; groups id and stat are
	// used. Default Vumi's regex for the SMPP 3.4 appendix B format.
	Regex string `yaml:"regex"`
	// StatusMapping maps the SMSC's state to pending, delivered or failed;
	// default Vumi's mapping. Unmapped states are pending.
	StatusMapping map[string]string `yaml:"status_mapping"`
}

// CacheConfig is smpp_cache_config.
type CacheConfig struct {
	// Timeout in seconds to keep SMSC message ids for delivery reports,
	// acknowledged message ids, and multipart parts; default 86400.
	Timeout int `yaml:"timeout"`
}

// DefaultDRRegex is Vumi's delivery receipt regex (Python's {,n} written
// {0,n} for Go).
const DefaultDRRegex = `id:(?P<id>[^ ]{0,65})` +
	`(?: +sub:(?P<sub>[^ ]+))?` +
	`(?: +dlvrd:(?P<dlvrd>[^ ]+))?` +
	`(?: +submit date:(?P<submit_date>\d*))?` +
	`(?: +done date:(?P<done_date>\d*))?` +
	` +stat:(?P<stat>[A-Z]{5,7})` +
	`(?: +err:(?P<err>[^ ]+))?` +
	` +[Tt]ext:(?P<text>.{0,20})` +
	`.*`

// DefaultStatusMapping is Vumi's delivery report status mapping.
func DefaultStatusMapping() map[string]string {
	return map[string]string{
		"delivered": "delivered", "failed": "failed", "pending": "pending",
		"ENROUTE": "pending", "DELIVERED": "delivered", "EXPIRED": "failed", "DELETED": "failed",
		"UNDELIVERABLE": "failed", "ACCEPTED": "delivered", "UNKNOWN": "pending", "REJECTED": "failed",
		"DELIVRD": "delivered", "REJECTD": "failed", "FAILED": "failed", "0": "delivered",
	}
}

// FlexInt is an integer that may be written as a string ("34"), as Vumi
// 0.x configs do.
type FlexInt int

// UnmarshalYAML implements yaml.Unmarshaler.
func (f *FlexInt) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.Atoi(strings.TrimSpace(n.Value))
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("must be an integer, got %q", n.Value)
	}
	*f = FlexInt(v)
	return nil
}

// EnumByte is a TON, NPI or registered delivery value by name or number.
type EnumByte byte

var enumNames = map[string]byte{
	// TON
	"UNKNOWN": 0, "INTERNATIONAL": 1, "NATIONAL": 2, "NETWORK_SPECIFIC": 3,
	"SUBSCRIBER_NUMBER": 4, "ALPHANUMERIC": 5, "ABBREVIATED": 6,
	// NPI (NATIONAL and UNKNOWN shared with TON only by name: NPI national is 8)
	"ISDN": 1, "DATA": 3, "TELEX": 4, "LAND_MOBILE": 6, "PRIVATE": 9, "ERMES": 10, "INTERNET": 14, "WAP_CLIENT_ID": 18,
	// registered delivery
	"NO_SMSC_DELIVERY_RECEIPT_REQUESTED": 0, "SMSC_DELIVERY_RECEIPT_REQUESTED": 1,
	"SMSC_DELIVERY_RECEIPT_REQUESTED_FOR_FAILURE": 2,
	"SME_DELIVERY_ACK_REQUESTED":                  1, "SME_MANUAL_ACK_REQUESTED": 2,
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (e *EnumByte) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a name or a number, got a %s", map[yaml.Kind]string{yaml.MappingNode: "mapping", yaml.SequenceNode: "list"}[n.Kind])
	}
	if v, ok := enumNames[strings.ToUpper(n.Value)]; ok {
		*e = EnumByte(v)
		return nil
	}
	v, err := strconv.ParseUint(n.Value, 0, 8)
	if err != nil {
		return fmt.Errorf("%q is not a known name or a number 0-255", n.Value)
	}
	*e = EnumByte(v)
	return nil
}

// PrefixMap is OPERATOR_PREFIX: prefix → operator name, or → a nested map
// of longer prefixes.
type PrefixMap map[string]PrefixEntry

// PrefixEntry is an operator name or a nested prefix map.
type PrefixEntry struct {
	Operator string
	Nested   PrefixMap
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *PrefixEntry) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		p.Operator = n.Value
		return nil
	case yaml.MappingNode:
		p.Nested = PrefixMap{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			var e PrefixEntry
			if err := e.UnmarshalYAML(n.Content[i+1]); err != nil {
				return err
			}
			p.Nested[n.Content[i].Value] = e
		}
		return nil
	}
	return errors.New("must be an operator name or a mapping of prefixes")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *PrefixMap) UnmarshalYAML(n *yaml.Node) error {
	var e PrefixEntry
	if n.Kind != yaml.MappingNode {
		return errors.New("must be a mapping of prefixes")
	}
	if err := e.UnmarshalYAML(n); err != nil {
		return err
	}
	*m = e.Nested
	return nil
}

// operator returns the operator of a normalised MSISDN: the longest
// matching prefix wins (Vumi walks the nested maps the same way).
func (m PrefixMap) operator(msisdn string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return len(keys[i]) > len(keys[j]) || (len(keys[i]) == len(keys[j]) && keys[i] < keys[j])
	})
	for _, k := range keys {
		if strings.HasPrefix(msisdn, k) {
			e := m[k]
			if e.Nested != nil {
				return e.Nested.operator(msisdn)
			}
			return e.Operator
		}
	}
	return "UNKNOWN"
}

// sourceFor returns the source address for a message to toAddr: the
// operator's number when OPERATOR_NUMBER has one, else fromAddr.
func (c *Config) sourceFor(toAddr, fromAddr string) string {
	if len(c.OperatorNumber) == 0 {
		return fromAddr
	}
	msisdn := strings.ReplaceAll(toAddr, "+", "")
	if strings.HasPrefix(msisdn, "0") {
		msisdn = c.CountryCode + msisdn[1:]
	}
	if n, ok := c.OperatorNumber[c.OperatorPrefix.operator(msisdn)]; ok && n != "" {
		return n
	}
	return fromAddr
}

func asciiMax(key, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("key %s: longer than %d characters", key, max)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7E {
			return fmt.Errorf("key %s: must be printable ASCII", key)
		}
	}
	return nil
}

var processorClasses = map[string]map[string]string{
	"submit_sm_processor_class": {
		"": "default", "default": "default", "sixdee": "sixdee", "mica": "mica",
		"vumi2.transports.smpp.processors.SubmitShortMessageProcessor":       "default",
		"vumi.transports.smpp.processors.SubmitShortMessageProcessor":        "default",
		"vumi.transports.smpp.processors.sixdee.SubmitShortMessageProcessor": "sixdee",
		"vumi.transports.smpp.processors.mica.SubmitShortMessageProcessor":   "mica",
	},
	"sm_processor_class": {
		"": "default", "default": "default", "sixdee": "sixdee", "mica": "mica",
		"vumi2.transports.smpp.processors.ShortMessageProcessor":              "default",
		"vumi.transports.smpp.processors.DeliverShortMessageProcessor":        "default",
		"vumi.transports.smpp.processors.sixdee.DeliverShortMessageProcessor": "sixdee",
		"vumi.transports.smpp.processors.mica.DeliverShortMessageProcessor":   "mica",
	},
	"dr_processor_class": {
		"": "default", "default": "default",
		"vumi2.transports.smpp.processors.DeliveryReportProcesser": "default",
		"vumi.transports.smpp.processors.DeliveryReportProcessor":  "default",
	},
	"smpp_cache_class": {
		"": "table", "table": "table",
		"vumi2.transports.smpp.smpp_cache.InMemorySmppCache": "table",
	},
}

func processor(key, v string) (string, error) {
	p, ok := processorClasses[key][v]
	if !ok {
		known := []string{}
		for k := range processorClasses[key] {
			if k != "" {
				known = append(known, k)
			}
		}
		sort.Strings(known)
		return "", fmt.Errorf("key %s: unknown class %q (known: %s)", key, v, strings.Join(known, ", "))
	}
	return p, nil
}

// Validate implements topology.WorkerConfig.
func (c *Config) Validate() error {
	if c.WindowSize == 0 {
		c.WindowSize = 32
	}
	if c.WindowSize < 1 || c.WindowSize > 10000 {
		return fmt.Errorf("key window_size: must be 1-10000, got %d", c.WindowSize)
	}
	if c.AmqpPrefetchCount == 0 {
		// Enough concurrent outbound messages to fill the window.
		c.AmqpPrefetchCount = c.WindowSize
	}
	if err := c.ValidateBase(); err != nil {
		return err
	}
	if err := c.validateEndpoint(); err != nil {
		return err
	}
	switch c.BindType {
	case "":
		c.BindType = bindTransceiver
	case bindTransceiver, bindTransmitter, bindReceiver, bindTxRx:
	default:
		return fmt.Errorf("key bind_type: %q is not transceiver, transmitter, receiver or tx_rx", c.BindType)
	}
	if c.SystemID == "" {
		return errors.New("key system_id: is required")
	}
	for _, f := range []struct {
		key, v string
		max    int
	}{{"system_id", c.SystemID, 15}, {"password", c.Password, 8}, {"system_type", c.SystemType, 12}, {"address_range", c.AddressRange, 40}} {
		if err := asciiMax(f.key, f.v, f.max); err != nil {
			return err
		}
	}
	if c.InterfaceVersion == 0 {
		c.InterfaceVersion = 34
	}
	if c.InterfaceVersion < 0 || c.InterfaceVersion > 34 {
		return fmt.Errorf("key interface_version: must be 0-34, got %d", c.InterfaceVersion)
	}
	ints := []struct {
		key string
		v   *int
		def int
	}{
		{"smpp_bind_timeout", &c.SmppBindTimeout, 30}, {"smpp_enquire_link_interval", &c.SmppEnquireLinkInterval, 55},
		{"initial_reconnect_delay", &c.InitialReconnectDelay, 5}, {"max_reconnect_delay", &c.MaxReconnectDelay, 60},
		{"smpp_response_timeout", &c.SmppResponseTimeout, 60}, {"smpp_cache_config.timeout", &c.SmppCacheConfig.Timeout, 86400},
		{"submit_sm_processor_config.multipart_sar_reference_rollover", &c.SubmitSmProcessorConfig.MultipartSarReferenceRollover, 0x10000},
		{"submit_sm_processor_config.max_session_length", &c.SubmitSmProcessorConfig.MaxSessionLength, 180},
		{"sm_processor_config.max_session_length", &c.SmProcessorConfig.MaxSessionLength, 180},
	}
	for _, f := range ints {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 1 {
			return fmt.Errorf("key %s: must be at least 1, got %d", f.key, *f.v)
		}
	}
	if c.SubmitSmProcessorConfig.MultipartSarReferenceRollover > 0x10000 {
		return errors.New("key submit_sm_processor_config.multipart_sar_reference_rollover: at most 65536")
	}
	if c.ThrottleDelay == 0 {
		c.ThrottleDelay = 0.1
	}
	if c.ThrottleDelay < 0 {
		return fmt.Errorf("key throttle_delay: must not be negative, got %v", c.ThrottleDelay)
	}
	if c.MtTps < 0 {
		return fmt.Errorf("key mt_tps: must not be negative, got %d", c.MtTps)
	}
	if c.DeliverSmDecodingError == "" {
		c.DeliverSmDecodingError = "ESME_RDELIVERYFAILURE"
	}
	st, ok := pdu.StatusByName(c.DeliverSmDecodingError)
	if !ok {
		return fmt.Errorf("key deliver_sm_decoding_error: %q is not an SMPP command status name", c.DeliverSmDecodingError)
	}
	c.decodingError = st
	if c.TransportType == "" {
		c.TransportType = schemas.TransportSMS
	}
	var err error
	if c.submitProc, err = processor("submit_sm_processor_class", c.SubmitSmProcessorClass); err != nil {
		return err
	}
	if c.smProc, err = processor("sm_processor_class", c.SmProcessorClass); err != nil {
		return err
	}
	if _, err = processor("dr_processor_class", c.DrProcessorClass); err != nil {
		return err
	}
	if _, err = processor("smpp_cache_class", c.SmppCacheClass); err != nil {
		return err
	}
	if err := c.SubmitSmProcessorConfig.validate(); err != nil {
		return err
	}
	switch c.SmProcessorConfig.UssdCodePduField {
	case "":
		c.SmProcessorConfig.UssdCodePduField = "short_message"
	case "short_message", "destination_addr":
	default:
		return fmt.Errorf("key sm_processor_config.ussd_code_pdu_field: %q is not short_message or destination_addr", c.SmProcessorConfig.UssdCodePduField)
	}
	overrides := map[int]string{}
	for k, v := range c.SmProcessorConfig.DataCodingOverrides {
		dc, err := coding.ParseDataCoding(k)
		if err != nil {
			return fmt.Errorf("key sm_processor_config.data_coding_overrides.%s: %w", k, err)
		}
		overrides[int(dc)] = v
	}
	if c.codecs, err = coding.NewTable(overrides); err != nil {
		return fmt.Errorf("key sm_processor_config.data_coding_overrides: %w", err)
	}
	if c.DrProcessorConfig.Regex == "" {
		c.DrProcessorConfig.Regex = DefaultDRRegex
	}
	c.defaultDRRegex = c.DrProcessorConfig.Regex == DefaultDRRegex
	// Python's {,n} is {0,n} in Go; match anchors at the start as
	// Python's re.match does.
	src := strings.ReplaceAll(c.DrProcessorConfig.Regex, "{,", "{0,")
	if c.drRegex, err = regexp.Compile(`^(?:` + src + `)`); err != nil {
		return fmt.Errorf("key dr_processor_config.regex: %w", err)
	}
	if names := c.drRegex.SubexpNames(); !contains(names, "id") || !contains(names, "stat") {
		return errors.New("key dr_processor_config.regex: needs named groups id and stat")
	}
	if c.DrProcessorConfig.StatusMapping == nil {
		c.DrProcessorConfig.StatusMapping = DefaultStatusMapping()
	}
	for k, v := range c.DrProcessorConfig.StatusMapping {
		if !schemas.DeliveryStatus(v).Valid() {
			return fmt.Errorf("key dr_processor_config.status_mapping.%s: %q is not pending, delivered or failed", k, v)
		}
	}
	if len(c.OperatorNumber) > 0 && len(c.OperatorPrefix) == 0 {
		return errors.New("key OPERATOR_PREFIX: is required with OPERATOR_NUMBER")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *Config) validateEndpoint() error {
	if c.TwistedEndpoint != "" {
		if c.Host != "" || c.Port != 0 {
			return errors.New("key twisted_endpoint: give either twisted_endpoint or host and port")
		}
		addr, err := endpoint.Client(c.TwistedEndpoint)
		if err != nil {
			return fmt.Errorf("key twisted_endpoint: %w", err)
		}
		c.addr = addr
		return nil
	}
	if c.Host == "" {
		c.Host = "localhost"
	}
	if c.Port == 0 {
		c.Port = 2775
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("key port: %d is not a port", c.Port)
	}
	c.addr = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	return nil
}

func (s *SubmitConfig) validate() error {
	if s.DataCoding == "" {
		s.DataCoding = "SMSC_DEFAULT_ALPHABET"
	}
	dc, err := coding.ParseDataCoding(s.DataCoding)
	if err != nil {
		return fmt.Errorf("key submit_sm_processor_config.data_coding: %w", err)
	}
	if coding.Default(dc) == nil {
		return fmt.Errorf("key submit_sm_processor_config.data_coding: %s has no character set to encode text with", s.DataCoding)
	}
	s.dataCoding = dc
	switch s.MultipartHandling {
	case "":
		s.MultipartHandling = "short_message"
	case "short_message", "message_payload", "multipart_sar", "multipart_udh":
	default:
		return fmt.Errorf("key submit_sm_processor_config.multipart_handling: %q is not short_message, message_payload, multipart_sar or multipart_udh", s.MultipartHandling)
	}
	if len(s.ServiceType) > 5 {
		return errors.New("key submit_sm_processor_config.service_type: longer than 5 characters")
	}
	if s.DestAddrNPI == nil {
		isdn := EnumByte(1)
		s.DestAddrNPI = &isdn
	}
	return nil
}

// IO implements topology.WorkerConfig: the transport's topics and its
// state tables (compacted).
func (c *Config) IO(name string) topology.IO {
	io := c.Config.IO(name)
	for _, t := range c.tables() {
		s := topology.Stream{Topic: t, Kind: "state", Compacted: true}
		io.Produces = append(io.Produces, s)
		io.Consumes = append(io.Consumes, s)
	}
	return io
}

// Table names (suffixes of the transport name).
const (
	tableMessageIDs = ".smpp.message_ids" // SMSC message id -> Vumi message id
	tableSent       = ".smpp.sent"        // Vumi message id -> SMSC message id (acknowledged)
	tableMultipart  = ".smpp.multipart"   // parts of inbound multipart messages
	tableSessions   = ".smpp.ussd_sessions"
)

func (c *Config) tables() []string {
	n := c.TransportName
	out := []string{n + tableMessageIDs, n + tableSent, n + tableMultipart}
	if c.smProc == "sixdee" || c.smProc == "mica" {
		out = append(out, n+tableSessions)
	}
	return out
}

func (c *Config) cacheTimeout() time.Duration {
	return time.Duration(c.SmppCacheConfig.Timeout) * time.Second
}
