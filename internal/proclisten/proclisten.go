// Package proclisten lists the TCP addresses a process listens on, from
// Linux's /proc: how tests check that a server binds only where it should
// (e.g. prism's job server on loopback). It reads; it never opens sockets.
package proclisten

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tcpListen is the state column of a listening socket in /proc/net/tcp*.
const tcpListen = "0A"

// Listeners returns the addresses process pid listens on over TCP (IPv4 and
// IPv6), each once, from /proc/PID/fd and /proc/PID/net/tcp{,6}. It needs
// Linux and permission to read the process's fd directory (the same user,
// or root).
func Listeners(pid int) ([]netip.AddrPort, error) {
	dir := fmt.Sprintf("/proc/%d", pid)
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return nil, fmt.Errorf("proclisten: the sockets of process %d: %w (Linux only; same user or root)", pid, err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var out []netip.AddrPort
	seen := map[netip.AddrPort]bool{}
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join(dir, "net", name))
		if errors.Is(err, os.ErrNotExist) && name == "tcp6" {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return nil, fmt.Errorf("proclisten: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // the header
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != tcpListen || !inodes[fs[9]] {
				continue
			}
			ap, err := ParseAddr(fs[1])
			if err != nil {
				return nil, fmt.Errorf("proclisten: %s/net/%s: %w", dir, name, err)
			}
			if !seen[ap] {
				seen[ap] = true
				out = append(out, ap)
			}
		}
	}
	return out, nil
}

// ParseAddr parses an address of /proc/net/tcp*: the IP in hex as
// 32-bit words in the machine's byte order (little-endian on every
// machine Eddy runs on), a colon, the port in hex. A v4-mapped IPv6
// address is returned as IPv4.
func ParseAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("address %q has no port", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q: want 8 or 32 hex digits", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	ip, _ := netip.AddrFromSlice(raw)
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: port: %w", s, err)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}
