package hub

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DevCA are the files WriteDevCA creates.
type DevCA struct {
	// CAFile is the CA certificate edges verify the hub with (link.caFile).
	CAFile string
	// CertFile and KeyFile are the hub's certificate and key
	// (eddy hub --tls-cert/--tls-key).
	CertFile, KeyFile string
}

// WriteDevCA creates a development CA and a hub certificate signed by it,
// valid for hosts (names or IPs) for one year, in dir: ca.pem, hub.pem,
// hub-key.pem (0600). The CA's key is not kept: issue a new set to add a
// host. For production use your own PKI.
func WriteDevCA(dir string, hosts []string) (DevCA, error) {
	if len(hosts) == 0 {
		return DevCA{}, fmt.Errorf("dev CA: give at least one host name or IP the edges use to reach the hub")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return DevCA{}, err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return DevCA{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "Eddy development CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return DevCA{}, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return DevCA{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return DevCA{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return DevCA{}, err
	}
	out := DevCA{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "hub.pem"), KeyFile: filepath.Join(dir, "hub-key.pem")}
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{out.CAFile, "CERTIFICATE", caDER, 0o644},
		{out.CertFile, "CERTIFICATE", der, 0o644},
		{out.KeyFile, "EC PRIVATE KEY", keyDER, 0o600},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return DevCA{}, err
		}
	}
	return out, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
