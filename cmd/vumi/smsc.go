package main

import (
	"context"
	"strings"

	"github.com/vumi-kafka/vumi/connectors/smpp/smsc"
)

func smscCommand() *command {
	c := &command{
		name:    "smsc",
		summary: "run the SMSC simulator: an SMPP server with an HTTP API to inject MO messages and USSD sessions, throttle, reject binds, delay or drop",
		usage:   "[-smpp ENDPOINT] [-http ENDPOINT] [-credentials id:password,...] [-receipt-delay D] [-receipt-status STAT] [-receipt-tlvs]",
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, c)
		listen := fs.String("smpp", "tcp:port=2775:interface=127.0.0.1", "SMPP endpoint to listen on")
		httpEP := fs.String("http", "tcp:port=8775:interface=127.0.0.1", "HTTP API endpoint, or none")
		creds := fs.String("credentials", "", "accepted binds as system_id:password pairs, comma separated (default: accept any)")
		delay := fs.Duration("receipt-delay", 0, "delay before delivery receipts")
		status := fs.String("receipt-status", "DELIVRD", "stat of delivery receipts (DELIVRD, UNDELIV, REJECTD, ...)")
		tlvs := fs.Bool("receipt-tlvs", false, "add receipted_message_id and message_state to receipts")
		keep := fs.Int("keep-messages", 10000, "how many accepted messages GET /messages lists (the most recent)")
		if err := parse(fs, args); err != nil {
			return err
		}
		cfg := &smsc.Config{TwistedEndpoint: *listen, HTTPEndpoint: *httpEP, ReceiptDelay: *delay, ReceiptStatus: *status, ReceiptTLVs: *tlvs, KeepMessages: *keep}
		if *creds != "" {
			cfg.Credentials = map[string]string{}
			for _, pair := range strings.Split(*creds, ",") {
				id, pw, ok := strings.Cut(pair, ":")
				if !ok {
					return usagef("-credentials: %q is not system_id:password", pair)
				}
				cfg.Credentials[id] = pw
			}
		}
		if err := cfg.Validate(); err != nil {
			return usagef("%v", err)
		}
		return smsc.Serve(ctx, cfg, smsc.Options{Credentials: cfg.Credentials, ReceiptDelay: cfg.ReceiptDelay,
			ReceiptStatus: cfg.ReceiptStatus, ReceiptTLVs: cfg.ReceiptTLVs, KeepSubmitted: cfg.KeepMessages, Logger: e.log})
	}
	return c
}
