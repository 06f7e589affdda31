package istioadapter

// Pins what istiod's Gateway API controller makes of a small fixture: the VirtualServices and
// Gateway it generates and the conditions it writes (an accepted route, a backendRef into
// another namespace without a ReferenceGrant, a listener that does not admit the route).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"istio.io/istio/pkg/util/protomarshal"
)

const gatewayFixture = `
apiVersion: v1
kind: Namespace
metadata: {name: a-orders, labels: {tenant: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: b-orders, labels: {tenant: b}}
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Service
metadata: {name: shop, namespace: a-orders}
spec: {selector: {app: shop}, ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: shop, namespace: b-orders}
spec: {selector: {app: shop}, ports: [{name: http, port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  gatewayClassName: istio
  listeners:
  - name: a
    hostname: a.example
    port: 80
    protocol: HTTP
    allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {kubernetes.io/metadata.name: a-orders}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ingress, namespace: a-orders}
spec:
  parentRefs: [{name: gw, namespace: istio-system, sectionName: a}]
  hostnames: [a.example]
  rules: [{backendRefs: [{name: shop, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: steal, namespace: b-orders}
spec:
  parentRefs: [{name: gw, namespace: istio-system, sectionName: a}]
  hostnames: [a.example]
  rules: [{backendRefs: [{name: shop, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh, namespace: a-orders}
spec:
  parentRefs: [{group: "", kind: Service, name: shop, port: 8080}]
  rules:
  - backendRefs: [{name: shop, namespace: b-orders, port: 8080}]
    timeouts: {request: 5s}
`

func fixtureObjects(t *testing.T, y string) []runtime.Object {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{scheme.AddToScheme, gatewayv1.Install} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	dec := serializer.NewCodecFactory(s).UniversalDeserializer()
	var out []runtime.Object
	for _, doc := range strings.Split(y, "\n---\n") {
		o, _, err := dec.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%v in %s", err, doc)
		}
		out = append(out, o)
	}
	return out
}

func TestGatewayAPIConversionExplore(t *testing.T) {
	start := time.Now()
	res, err := ConvertGatewayAPI(fixtureObjects(t, gatewayFixture), "cluster.local", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("took %s", time.Since(start))
	for _, c := range append(res.VirtualServices, res.Gateways...) {
		y, _ := protomarshal.ToYAML(c.Spec)
		t.Logf("%s/%s parents=%v\n%s", c.Namespace, c.Name, c.Parents, y)
	}
	for _, s := range res.Statuses {
		t.Logf("%s: %s", s.Ref(), fmt.Sprint(s.Conditions, s.Parents))
	}
}
