package xds

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"istio.io/istio/security/pkg/pki/util"
)

// CA is the local mesh's certificate authority: a self-signed root, as istiod's self-signed CA
// makes (`istio-ca-secret`), which signs each workload's CSR the way istiod's Sign does.
type CA struct {
	cert    *x509.Certificate
	key     crypto.PrivateKey
	rootPEM []byte
}

// LoadOrCreateCA reads the root from dir (root-cert.pem, ca-key.pem), creating it on first use.
// The key never leaves dir (mode 0600).
func LoadOrCreateCA(dir, trustDomain string) (*CA, error) {
	certFile, keyFile := filepath.Join(dir, "root-cert.pem"), filepath.Join(dir, "ca-key.pem")
	if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		certPEM, keyPEM, err := util.GenCertKeyFromOptions(util.CertOptions{
			Org:          trustDomain,
			IsCA:         true,
			IsSelfSigned: true,
			TTL:          10 * 365 * 24 * time.Hour, // istiod's self-signed root: 10 years
			ECSigAlg:     util.EcdsaSigAlg,
		})
		if err != nil {
			return nil, fmt.Errorf("creating the mesh CA: %w", err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
			return nil, err
		}
	}
	cert, key, err := util.LoadSignerCredsFromFiles(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the mesh CA from %s: %w", dir, err)
	}
	rootPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, rootPEM: rootPEM}, nil
}

// RootPEM is the trust anchor (SDS `ROOTCA`).
func (ca *CA) RootPEM() []byte { return ca.rootPEM }

// Issue makes a workload key and CSR (as istio-agent does) and signs it with the identity as
// its only URI SAN (as istiod does). It returns the certificate chain and the key, PEM.
func (ca *CA) Issue(spiffeID string, ttl time.Duration) (chainPEM, keyPEM []byte, err error) {
	csrPEM, keyPEM, err := util.GenCSR(util.CertOptions{Host: spiffeID, ECSigAlg: util.EcdsaSigAlg})
	if err != nil {
		return nil, nil, err
	}
	csr, err := util.ParsePemEncodedCSR(csrPEM)
	if err != nil {
		return nil, nil, err
	}
	der, err := util.GenCertFromCSR(csr, ca.cert, csr.PublicKey, ca.key, []string{spiffeID}, ttl, false)
	if err != nil {
		return nil, nil, fmt.Errorf("signing %s: %w", spiffeID, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}
