package proclisten

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
)

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0035":                         "0.0.0.0:53",
		"00000000000000000000000000000000:0016": "[::]:22",
		"00000000000000000000000001000000:1F90": "[::1]:8080",
		"0000000000000000FFFF00000100007F:0050": "127.0.0.1:80",
	} {
		got, err := ParseAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseAddr(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0100007F", "01007F:0050", "zz00007F:0050", "0100007F:XYZ", "0100007F:10000"} {
		if got, err := ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q) = %v, want an error", bad, got)
		}
	}
}

// TestListeners finds this process's own listeners, on loopback and on
// every interface, and not a socket it only connected.
func TestListeners(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	all, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	conn, err := net.Dial("tcp", lo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := Listeners(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	loAddr := netip.MustParseAddrPort(lo.Addr().String())
	if !slices.Contains(got, loAddr) {
		t.Errorf("listeners %v lack %v", got, loAddr)
	}
	allPort := uint16(all.Addr().(*net.TCPAddr).Port)
	if !slices.ContainsFunc(got, func(a netip.AddrPort) bool { return a.Port() == allPort && a.Addr().IsUnspecified() }) {
		t.Errorf("listeners %v lack the wildcard one on port %d", got, allPort)
	}
	local := netip.MustParseAddrPort(conn.LocalAddr().String())
	if slices.ContainsFunc(got, func(a netip.AddrPort) bool { return a.Port() == local.Port() }) {
		t.Errorf("listeners %v include the connected socket %v", got, local)
	}
	if _, err := Listeners(-1); err == nil {
		t.Error("Listeners(-1) did not fail")
	}
}
