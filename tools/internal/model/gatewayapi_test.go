package model

// The gateway workload of the gateway-api variant is the Deployment istiod creates for the
// Gateway of class istio: named, labelled and running as istiod would.

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	typev1beta1 "istio.io/api/type/v1beta1"

	"ordermesh.local/tools/internal/manifest"
)

func gatewayDecoded(annotations map[string]string) Decoded {
	gw := &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "front", Namespace: "istio-system", Annotations: annotations},
		Spec: gatewayv1.GatewaySpec{GatewayClassName: IstioGatewayClass,
			Infrastructure: &gatewayv1.GatewayInfrastructure{Labels: map[gatewayv1.LabelKey]gatewayv1.LabelValue{"istio": "ingressgateway"}}},
	}
	obj := &manifest.Object{Source: "mesh-gateway-api", Obj: map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": "front", "namespace": "istio-system"}}}
	return Decoded{Object: obj, Unit: "mesh", Kube: gw}
}

func TestIngressGatewayFromGatewayAPI(t *testing.T) {
	m := Build([]Decoded{gatewayDecoded(map[string]string{GatewayServiceAccountAnnotation: "edge-sa"})}, nil, nil)
	w := m.IngressGateway
	if w.Name != "front-istio" || w.Namespace != "istio-system" || w.ServiceAccount != "edge-sa" {
		t.Errorf("gateway workload %s/%s as %s, want istio-system/front-istio as edge-sa", w.Namespace, w.Name, w.ServiceAccount)
	}
	if w.PodLabels["istio"] != "ingressgateway" || w.PodLabels[GatewayNameLabel] != "front" {
		t.Errorf("pod labels %v lack the infrastructure labels or gateway-name", w.PodLabels)
	}
	ref := func(name string) []*typev1beta1.PolicyTargetReference {
		return []*typev1beta1.PolicyTargetReference{{Group: gatewayv1.GroupName, Kind: "Gateway", Name: name}}
	}
	if !w.TargetedBy("istio-system", ref("front")) || w.TargetedBy("istio-system", ref("other")) || w.TargetedBy("default", ref("front")) {
		t.Errorf("targetRefs: want exactly a Gateway reference to istio-system/front to bind")
	}
	// Without the annotation istiod runs the deployment as <name>-istio.
	if sa := Build([]Decoded{gatewayDecoded(nil)}, nil, nil).IngressGateway.ServiceAccount; sa != "front-istio" {
		t.Errorf("default ServiceAccount %q, want front-istio", sa)
	}
	// Without a Gateway API Gateway, the gateway is the one istioctl installs.
	if name := Build(nil, nil, nil).IngressGateway.Name; name != "istio-ingressgateway" {
		t.Errorf("istio variant gateway %q, want istio-ingressgateway", name)
	}
}
