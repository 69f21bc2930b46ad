// Package endpoint parses Vumi's Twisted endpoint strings
// ("tcp:9010", "tcp:port=9010:interface=127.0.0.1",
// "tcp:host=smsc.example.com:port=2775") into Go network addresses.
package endpoint

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Server parses a server endpoint description into a listen address:
// "tcp:PORT", "tcp:port=PORT[:interface=HOST]", or plain "HOST:PORT" /
// ":PORT". Only TCP is supported.
func Server(desc string) (string, error) {
	if desc == "" {
		return "", fmt.Errorf("empty endpoint")
	}
	if !strings.Contains(desc, "=") && !strings.HasPrefix(desc, "tcp:") && !strings.HasPrefix(desc, "tcp6:") {
		if _, port, err := net.SplitHostPort(desc); err == nil && checkPort(port) == nil {
			return desc, nil
		}
	}
	proto, args, kw, err := split(desc)
	if err != nil {
		return "", err
	}
	if proto != "tcp" && proto != "tcp6" {
		return "", fmt.Errorf("endpoint %q: only tcp server endpoints are supported, got %q", desc, proto)
	}
	port := kw["port"]
	if port == "" && len(args) > 0 {
		port = args[0]
	}
	if port == "" {
		return "", fmt.Errorf("endpoint %q: no port", desc)
	}
	if err := checkPort(port); err != nil {
		return "", fmt.Errorf("endpoint %q: %w", desc, err)
	}
	for k := range kw {
		if k != "port" && k != "interface" && k != "backlog" {
			return "", fmt.Errorf("endpoint %q: unknown option %q (want port, interface, backlog)", desc, k)
		}
	}
	return net.JoinHostPort(kw["interface"], port), nil
}

// Client parses a client endpoint description into a dial address:
// "tcp:host=HOST:port=PORT", "tcp:HOST:PORT", or plain "HOST:PORT".
func Client(desc string) (string, error) {
	if desc == "" {
		return "", fmt.Errorf("empty endpoint")
	}
	if !strings.HasPrefix(desc, "tcp:") && !strings.HasPrefix(desc, "tls:") && !strings.HasPrefix(desc, "ssl:") {
		if host, port, err := net.SplitHostPort(desc); err == nil && host != "" && checkPort(port) == nil {
			return desc, nil
		}
	}
	proto, args, kw, err := split(desc)
	if err != nil {
		return "", err
	}
	if proto != "tcp" {
		return "", fmt.Errorf("endpoint %q: only tcp client endpoints are supported here, got %q", desc, proto)
	}
	host, port := kw["host"], kw["port"]
	if host == "" && len(args) > 0 {
		host = args[0]
	}
	if port == "" && len(args) > 1 {
		port = args[1]
	}
	if host == "" || port == "" {
		return "", fmt.Errorf("endpoint %q: host and port are required", desc)
	}
	if err := checkPort(port); err != nil {
		return "", fmt.Errorf("endpoint %q: %w", desc, err)
	}
	return net.JoinHostPort(host, port), nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return nil
}

// split splits "proto:a:b:k=v" (with "\:" escaping a colon, as Twisted
// allows) into its protocol, positional and keyword arguments.
func split(desc string) (proto string, args []string, kw map[string]string, err error) {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(desc); i++ {
		switch {
		case desc[i] == '\\' && i+1 < len(desc):
			i++
			cur.WriteByte(desc[i])
		case desc[i] == ':':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(desc[i])
		}
	}
	parts = append(parts, cur.String())
	if len(parts) < 2 {
		return "", nil, nil, fmt.Errorf("endpoint %q: want PROTOCOL:ARGS such as tcp:9010", desc)
	}
	kw = map[string]string{}
	for _, p := range parts[1:] {
		if k, v, ok := strings.Cut(p, "="); ok {
			kw[k] = v
		} else {
			args = append(args, p)
		}
	}
	return parts[0], args, kw, nil
}
