// The secret discovery service each sidecar asks for its certificates, as istio-agent serves
// it in a pod: one unix socket per pod, two resources — `default` (the workload's certificate
// chain and key, URI SAN spiffe://<trust domain>/ns/<ns>/sa/<sa>) and `ROOTCA` (the trust
// anchor). Whatever node id a client sends, a socket serves only its own pod's identity.
package mesh

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

const secretTypeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// Identity is what one pod's SDS serves.
type Identity struct {
	SpiffeID         string
	ChainPEM, KeyPEM []byte
	RootPEM          []byte
}

type sdsServer struct {
	secretv3.UnimplementedSecretDiscoveryServiceServer
	pod   string
	id    Identity
	nonce atomic.Int64
}

// serveSDS serves id on a unix socket at path (removed first if stale), readable by the proxy
// (uid 1337). It returns the gRPC server to stop.
func serveSDS(path, pod string, id Identity) (*grpc.Server, error) {
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		return nil, err
	}
	g := grpc.NewServer()
	secretv3.RegisterSecretDiscoveryServiceServer(g, &sdsServer{pod: pod, id: id})
	go func() { _ = g.Serve(l) }()
	return g, nil
}

func (s *sdsServer) secret(name string) (*anypb.Any, error) {
	var sec *tlsv3.Secret
	switch name {
	case "default":
		sec = &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.id.ChainPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.id.KeyPEM}},
		}}}
	case "ROOTCA":
		sec = &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.id.RootPEM}},
		}}}
	default:
		return nil, fmt.Errorf("unknown secret %q (this SDS serves default and ROOTCA)", name)
	}
	return anypb.New(sec)
}

func (s *sdsServer) response(names []string) (*discovery.DiscoveryResponse, error) {
	resp := &discovery.DiscoveryResponse{VersionInfo: "1", TypeUrl: secretTypeURL,
		Nonce: strconv.FormatInt(s.nonce.Add(1), 10)}
	for _, n := range names {
		r, err := s.secret(n)
		if err != nil {
			return nil, err
		}
		resp.Resources = append(resp.Resources, r)
	}
	return resp, nil
}

// StreamSecrets is state-of-the-world SDS, what Envoy's SdsSecretConfig over gRPC uses.
func (s *sdsServer) StreamSecrets(stream secretv3.SecretDiscoveryService_StreamSecretsServer) error {
	var sent []string
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		if req.GetErrorDetail() != nil {
			logf("sds %s: proxy rejected %v: %s", s.pod, req.GetResourceNames(), req.GetErrorDetail().GetMessage())
			continue
		}
		if req.GetResponseNonce() != "" && sameNames(req.GetResourceNames(), sent) {
			continue // an ACK
		}
		resp, err := s.response(req.GetResourceNames())
		if err != nil {
			return status.Error(codes.NotFound, err.Error())
		}
		if err := stream.Send(resp); err != nil {
			return nil
		}
		sent = append([]string(nil), req.GetResourceNames()...)
	}
}

// FetchSecrets answers a one-off request.
func (s *sdsServer) FetchSecrets(_ context.Context, req *discovery.DiscoveryRequest) (*discovery.DiscoveryResponse, error) {
	resp, err := s.response(req.GetResourceNames())
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	return resp, nil
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
