// Package pdu encodes and decodes SMPP 3.4 protocol data units: the
// 16-byte header, the mandatory parameters of every operation the
// transport and the simulator use, and optional parameters (TLVs).
//
// Decoding never panics: malformed input gives a *DecodeError carrying the
// command status a peer should answer with (in a generic_nack or the
// operation's response).
package pdu

import "fmt"

// CommandID identifies an SMPP operation.
type CommandID uint32

// Command ids of SMPP 3.4 (section 5.1.2.1).
const (
	GenericNack         CommandID = 0x80000000
	BindReceiver        CommandID = 0x00000001
	BindReceiverResp    CommandID = 0x80000001
	BindTransmitter     CommandID = 0x00000002
	BindTransmitterResp CommandID = 0x80000002
	QuerySM             CommandID = 0x00000003
	QuerySMResp         CommandID = 0x80000003
	SubmitSM            CommandID = 0x00000004
	SubmitSMResp        CommandID = 0x80000004
	DeliverSM           CommandID = 0x00000005
	DeliverSMResp       CommandID = 0x80000005
	Unbind              CommandID = 0x00000006
	UnbindResp          CommandID = 0x80000006
	ReplaceSM           CommandID = 0x00000007
	ReplaceSMResp       CommandID = 0x80000007
	CancelSM            CommandID = 0x00000008
	CancelSMResp        CommandID = 0x80000008
	BindTransceiver     CommandID = 0x00000009
	BindTransceiverResp CommandID = 0x80000009
	Outbind             CommandID = 0x0000000B
	EnquireLink         CommandID = 0x00000015
	EnquireLinkResp     CommandID = 0x80000015
	SubmitMulti         CommandID = 0x00000021
	SubmitMultiResp     CommandID = 0x80000021
	AlertNotification   CommandID = 0x00000102
	DataSM              CommandID = 0x00000103
	DataSMResp          CommandID = 0x80000103
)

const respBit = 0x80000000

// IsResponse reports whether id is a response (or generic_nack).
func (id CommandID) IsResponse() bool { return id&respBit != 0 }

// Resp returns the response command id of a request.
func (id CommandID) Resp() CommandID { return id | respBit }

var commandNames = map[CommandID]string{
	GenericNack: "generic_nack", BindReceiver: "bind_receiver", BindReceiverResp: "bind_receiver_resp",
	BindTransmitter: "bind_transmitter", BindTransmitterResp: "bind_transmitter_resp",
	QuerySM: "query_sm", QuerySMResp: "query_sm_resp", SubmitSM: "submit_sm", SubmitSMResp: "submit_sm_resp",
	DeliverSM: "deliver_sm", DeliverSMResp: "deliver_sm_resp", Unbind: "unbind", UnbindResp: "unbind_resp",
	ReplaceSM: "replace_sm", ReplaceSMResp: "replace_sm_resp", CancelSM: "cancel_sm", CancelSMResp: "cancel_sm_resp",
	BindTransceiver: "bind_transceiver", BindTransceiverResp: "bind_transceiver_resp", Outbind: "outbind",
	EnquireLink: "enquire_link", EnquireLinkResp: "enquire_link_resp", SubmitMulti: "submit_multi",
	SubmitMultiResp: "submit_multi_resp", AlertNotification: "alert_notification", DataSM: "data_sm", DataSMResp: "data_sm_resp",
}

func (id CommandID) String() string {
	if n, ok := commandNames[id]; ok {
		return n
	}
	return fmt.Sprintf("command_0x%08x", uint32(id))
}

// Status is a PDU's command_status.
type Status uint32

// Command statuses of SMPP 3.4 (section 5.1.3).
const (
	ESME_ROK              Status = 0x00000000
	ESME_RINVMSGLEN       Status = 0x00000001
	ESME_RINVCMDLEN       Status = 0x00000002
	ESME_RINVCMDID        Status = 0x00000003
	ESME_RINVBNDSTS       Status = 0x00000004
	ESME_RALYBND          Status = 0x00000005
	ESME_RINVPRTFLG       Status = 0x00000006
	ESME_RINVREGDLVFLG    Status = 0x00000007
	ESME_RSYSERR          Status = 0x00000008
	ESME_RINVSRCADR       Status = 0x0000000A
	ESME_RINVDSTADR       Status = 0x0000000B
	ESME_RINVMSGID        Status = 0x0000000C
	ESME_RBINDFAIL        Status = 0x0000000D
	ESME_RINVPASWD        Status = 0x0000000E
	ESME_RINVSYSID        Status = 0x0000000F
	ESME_RCANCELFAIL      Status = 0x00000011
	ESME_RREPLACEFAIL     Status = 0x00000013
	ESME_RMSGQFUL         Status = 0x00000014
	ESME_RINVSERTYP       Status = 0x00000015
	ESME_RINVNUMDESTS     Status = 0x00000033
	ESME_RINVDLNAME       Status = 0x00000034
	ESME_RINVDESTFLAG     Status = 0x00000040
	ESME_RINVSUBREP       Status = 0x00000042
	ESME_RINVESMCLASS     Status = 0x00000043
	ESME_RCNTSUBDL        Status = 0x00000044
	ESME_RSUBMITFAIL      Status = 0x00000045
	ESME_RINVSRCTON       Status = 0x00000048
	ESME_RINVSRCNPI       Status = 0x00000049
	ESME_RINVDSTTON       Status = 0x00000050
	ESME_RINVDSTNPI       Status = 0x00000051
	ESME_RINVSYSTYP       Status = 0x00000053
	ESME_RINVREPFLAG      Status = 0x00000054
	ESME_RINVNUMMSGS      Status = 0x00000055
	ESME_RTHROTTLED       Status = 0x00000058
	ESME_RINVSCHED        Status = 0x00000061
	ESME_RINVEXPIRY       Status = 0x00000062
	ESME_RINVDFTMSGID     Status = 0x00000063
	ESME_RX_T_APPN        Status = 0x00000064
	ESME_RX_P_APPN        Status = 0x00000065
	ESME_RX_R_APPN        Status = 0x00000066
	ESME_RQUERYFAIL       Status = 0x00000067
	ESME_RINVOPTPARSTREAM Status = 0x000000C0
	ESME_ROPTPARNOTALLWD  Status = 0x000000C1
	ESME_RINVPARLEN       Status = 0x000000C2
	ESME_RMISSINGOPTPARAM Status = 0x000000C3
	ESME_RINVOPTPARAMVAL  Status = 0x000000C4
	ESME_RDELIVERYFAILURE Status = 0x000000FE
	ESME_RUNKNOWNERR      Status = 0x000000FF
)

var statusNames = map[Status]string{
	ESME_ROK: "ESME_ROK", ESME_RINVMSGLEN: "ESME_RINVMSGLEN", ESME_RINVCMDLEN: "ESME_RINVCMDLEN",
	ESME_RINVCMDID: "ESME_RINVCMDID", ESME_RINVBNDSTS: "ESME_RINVBNDSTS", ESME_RALYBND: "ESME_RALYBND",
	ESME_RINVPRTFLG: "ESME_RINVPRTFLG", ESME_RINVREGDLVFLG: "ESME_RINVREGDLVFLG", ESME_RSYSERR: "ESME_RSYSERR",
	ESME_RINVSRCADR: "ESME_RINVSRCADR", ESME_RINVDSTADR: "ESME_RINVDSTADR", ESME_RINVMSGID: "ESME_RINVMSGID",
	ESME_RBINDFAIL: "ESME_RBINDFAIL", ESME_RINVPASWD: "ESME_RINVPASWD", ESME_RINVSYSID: "ESME_RINVSYSID",
	ESME_RCANCELFAIL: "ESME_RCANCELFAIL", ESME_RREPLACEFAIL: "ESME_RREPLACEFAIL", ESME_RMSGQFUL: "ESME_RMSGQFUL",
	ESME_RINVSERTYP: "ESME_RINVSERTYP", ESME_RINVNUMDESTS: "ESME_RINVNUMDESTS", ESME_RINVDLNAME: "ESME_RINVDLNAME",
	ESME_RINVDESTFLAG: "ESME_RINVDESTFLAG", ESME_RINVSUBREP: "ESME_RINVSUBREP", ESME_RINVESMCLASS: "ESME_RINVESMCLASS",
	ESME_RCNTSUBDL: "ESME_RCNTSUBDL", ESME_RSUBMITFAIL: "ESME_RSUBMITFAIL", ESME_RINVSRCTON: "ESME_RINVSRCTON",
	ESME_RINVSRCNPI: "ESME_RINVSRCNPI", ESME_RINVDSTTON: "ESME_RINVDSTTON", ESME_RINVDSTNPI: "ESME_RINVDSTNPI",
	ESME_RINVSYSTYP: "ESME_RINVSYSTYP", ESME_RINVREPFLAG: "ESME_RINVREPFLAG", ESME_RINVNUMMSGS: "ESME_RINVNUMMSGS",
	ESME_RTHROTTLED: "ESME_RTHROTTLED", ESME_RINVSCHED: "ESME_RINVSCHED", ESME_RINVEXPIRY: "ESME_RINVEXPIRY",
	ESME_RINVDFTMSGID: "ESME_RINVDFTMSGID", ESME_RX_T_APPN: "ESME_RX_T_APPN", ESME_RX_P_APPN: "ESME_RX_P_APPN",
	ESME_RX_R_APPN: "ESME_RX_R_APPN", ESME_RQUERYFAIL: "ESME_RQUERYFAIL", ESME_RINVOPTPARSTREAM: "ESME_RINVOPTPARSTREAM",
	ESME_ROPTPARNOTALLWD: "ESME_ROPTPARNOTALLWD", ESME_RINVPARLEN: "ESME_RINVPARLEN", ESME_RMISSINGOPTPARAM: "ESME_RMISSINGOPTPARAM",
	ESME_RINVOPTPARAMVAL: "ESME_RINVOPTPARAMVAL", ESME_RDELIVERYFAILURE: "ESME_RDELIVERYFAILURE", ESME_RUNKNOWNERR: "ESME_RUNKNOWNERR",
}

// String returns the spec's name of the status, e.g. ESME_RTHROTTLED.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("ESME_0x%08x", uint32(s))
}

// StatusByName returns the status called name (e.g. "ESME_RDELIVERYFAILURE").
func StatusByName(name string) (Status, bool) {
	for s, n := range statusNames {
		if n == name {
			return s, true
		}
	}
	return 0, false
}

// Error makes a non-OK status usable as an error.
func (s Status) Error() string { return s.String() }

// Tag is an optional parameter's tag.
type Tag uint16

// Optional parameter tags used here (SMPP 3.4 section 5.3.2).
const (
	TagDestAddrSubunit      Tag = 0x0005
	TagSourceAddrSubunit    Tag = 0x000D
	TagPayloadType          Tag = 0x0019
	TagReceiptedMessageID   Tag = 0x001E
	TagUserMessageReference Tag = 0x0204
	TagSourcePort           Tag = 0x020A
	TagDestinationPort      Tag = 0x020B
	TagSarMsgRefNum         Tag = 0x020C
	TagLanguageIndicator    Tag = 0x020D
	TagSarTotalSegments     Tag = 0x020E
	TagSarSegmentSeqnum     Tag = 0x020F
	TagSCInterfaceVersion   Tag = 0x0210
	TagNetworkErrorCode     Tag = 0x0423
	TagMessagePayload       Tag = 0x0424
	TagMoreMessagesToSend   Tag = 0x0426
	TagMessageState         Tag = 0x0427
	TagUssdServiceOp        Tag = 0x0501
	TagItsReplyType         Tag = 0x1380
	TagItsSessionInfo       Tag = 0x1383
)

// MessageState values of the message_state TLV (section 5.2.28).
var MessageStates = map[byte]string{
	1: "ENROUTE", 2: "DELIVERED", 3: "EXPIRED", 4: "DELETED",
	5: "UNDELIVERABLE", 6: "ACCEPTED", 7: "UNKNOWN", 8: "REJECTED",
}

// Bits of esm_class (section 5.2.12).
const (
	ESMClassTypeMask        byte = 0x3C // message type bits 5-2
	ESMClassDeliveryReceipt byte = 0x04
	ESMClassUDHI            byte = 0x40
)
