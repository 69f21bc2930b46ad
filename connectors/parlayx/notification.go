package parlayx

import (
	"fmt"
	"time"

	"github.com/vumi-kafka/vumi/processors/middleware"
)

// Reception is a notifySmsReception: a message from a subscriber.
type Reception struct {
	Correlator string
	LinkID     string // from the NotifySOAPHeader; "" when absent
	Message    string
	// Sender and ServiceActivationNumber are normalised ("tel:2711..."
	// becomes "+2711...", short codes stay).
	Sender                  string
	ServiceActivationNumber string
	DateTime                *time.Time
}

// Receipt is a notifySmsDeliveryReceipt.
type Receipt struct {
	Correlator string
	Address    string
	// Status is ParlayX's DeliveryStatus name; Vumi's is DeliveryStatuses[Status].
	Status string
}

// DeliveryStatuses maps ParlayX's DeliveryStatus enumeration to Vumi's.
var DeliveryStatuses = map[string]string{
	"DeliveredToNetwork":               "delivered",
	"DeliveryUncertain":                "pending",
	"DeliveryImpossible":               "failed",
	"MessageWaiting":                   "pending",
	"DeliveredToTerminal":              "delivered",
	"DeliveryNotificationNotSupported": "failed",
}

// NormalizeAddress turns a ParlayX address into an MSISDN.
func NormalizeAddress(a string) string {
	if len(a) >= 4 && a[:4] == "tel:" {
		a = a[4:]
	}
	return middleware.NormalizeMSISDN(a, "")
}

func clientFault(format string, a ...any) *Fault {
	return &Fault{Code: "soapenv:Client", String: fmt.Sprintf(format, a...)}
}

// ParseNotification reads a request to the SmsNotification service: a
// *Reception or a *Receipt, or a *Fault to answer with.
func ParseNotification(doc []byte) (any, *Fault) {
	root, err := ParseXML(doc)
	if err != nil {
		return nil, clientFault("%v", err)
	}
	body, header, err := Unwrap(root)
	if err != nil {
		return nil, err.(*Fault)
	}
	if len(body.Children) == 0 {
		return nil, clientFault("No actionable items")
	}
	op := body.Children[0]
	switch {
	case op.Name.Local == "notifySmsReception":
		return parseReception(op, header)
	case op.Name.Local == "notifySmsDeliveryReceipt":
		return parseReceipt(op)
	}
	return nil, &Fault{Code: "soapenv:Server", String: "No handler for " + op.Name.Local}
}

var dateTimeFormats = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05"}

func parseReception(op, header *Element) (any, *Fault) {
	r := &Reception{}
	var ok bool
	if r.Correlator, ok = op.ChildText(NSNotification, "correlator"); !ok {
		return nil, clientFault("notifySmsReception: no correlator")
	}
	msg := op.Child(NSNotification, "message")
	if msg == nil {
		return nil, clientFault("notifySmsReception: no message")
	}
	if m := msg.Child("", "message"); m != nil {
		r.Message = m.Text
	}
	sender, ok := msg.ChildText("", "senderAddress")
	if !ok || sender == "" {
		return nil, clientFault("notifySmsReception: message has no senderAddress")
	}
	san, ok := msg.ChildText("", "smsServiceActivationNumber")
	if !ok || san == "" {
		return nil, clientFault("notifySmsReception: message has no smsServiceActivationNumber")
	}
	r.Sender, r.ServiceActivationNumber = NormalizeAddress(sender), NormalizeAddress(san)
	if dt, ok := msg.ChildText("", "dateTime"); ok && dt != "" {
		for _, f := range dateTimeFormats {
			if t, err := time.Parse(f, dt); err == nil {
				r.DateTime = &t
				break
			}
		}
		if r.DateTime == nil {
			return nil, clientFault("notifySmsReception: dateTime %q is not an ISO 8601 time", dt)
		}
	}
	if l := header.Find(NSCommon, "linkid"); l != nil {
		r.LinkID = l.Text
	}
	return r, nil
}

func parseReceipt(op *Element) (any, *Fault) {
	r := &Receipt{}
	var ok bool
	if r.Correlator, ok = op.ChildText(NSNotification, "correlator"); !ok {
		return nil, clientFault("notifySmsDeliveryReceipt: no correlator")
	}
	ds := op.Child(NSNotification, "deliveryStatus")
	if ds == nil {
		return nil, clientFault("notifySmsDeliveryReceipt: no deliveryStatus")
	}
	addr, _ := ds.ChildText("", "address")
	r.Address = NormalizeAddress(addr)
	r.Status, _ = ds.ChildText("", "deliveryStatus")
	if _, ok := DeliveryStatuses[r.Status]; !ok {
		return nil, clientFault("No such delivery status enumeration value: %q", r.Status)
	}
	return r, nil
}
