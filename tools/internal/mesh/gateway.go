// The ingress gateway's pods and Service, per routing variant: in the istio variant the
// istio-ingressgateway `istioctl install` creates (deploy/ does not render it); in the
// gateway-api variant the Deployment and Service istiod's automated deployment creates for
// deploy/'s Gateway API Gateway (names, service account, labels and replicas derived with
// Istio's own helpers, Envoy binding the listener port as the kube-gateway template lets it).
package mesh

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	kuberuntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"ordermesh.local/tools/internal/istioadapter/xds"
	"ordermesh.local/tools/internal/model"
)

// GatewayPlan is what the mesh runs for the ingress.
type GatewayPlan struct {
	Workload       string // the Deployment's name (pods <Workload>-<i>)
	Namespace      string
	Service        string // the Service in front of it
	ServiceAccount string
	Labels         map[string]string
	Replicas       int
	Port           int32 // where its Envoy listens for HTTP (the container port)
	PortName       string
	ServicePorts   []corev1.ServicePort
	Selector       map[string]string
}

// istioGateway is the istio-ingressgateway of the istio variant: one replica, HTTP on 8080
// behind Service port 80.
func istioGateway(m *model.Model) *GatewayPlan {
	gw := m.IngressGateway
	labels := copyLabels(gw.PodLabels)
	labels["sidecar.istio.io/inject"] = "false"
	labels["service.istio.io/canonical-name"] = GatewayService
	labels["service.istio.io/canonical-revision"] = "latest"
	return &GatewayPlan{Workload: gw.Name, Namespace: gw.Namespace, Service: GatewayService, ServiceAccount: gw.ServiceAccount,
		Labels: labels, Replicas: 1, Port: GatewayPort, PortName: "http2", Selector: map[string]string{"istio": "ingressgateway"},
		ServicePorts: []corev1.ServicePort{
			{Name: "status-port", Port: 15021, TargetPort: intstr.FromInt32(15021), Protocol: corev1.ProtocolTCP},
			{Name: "http2", Port: 80, TargetPort: intstr.FromInt32(GatewayPort), Protocol: corev1.ProtocolTCP},
		}}
}

// gatewayPlanFor picks the variant's gateway: the automated deployment of the one Gateway API
// Gateway when deploy/ has one, else istio-ingressgateway.
func gatewayPlanFor(m *model.Model, gatewayAPI []kuberuntime.Object) (*GatewayPlan, error) {
	var gws []*gatewayv1.Gateway
	for _, o := range gatewayAPI {
		if g, ok := o.(*gatewayv1.Gateway); ok {
			gws = append(gws, g)
		}
	}
	switch len(gws) {
	case 0:
		return istioGateway(m), nil
	case 1:
		return automatedDeployment(m, gws[0])
	}
	return nil, fmt.Errorf("%d Gateway API Gateways: the local mesh runs one ingress", len(gws))
}

// automatedDeployment is what istiod deploys for gw: Deployment and Service <gateway>-istio,
// replicas from its options' horizontalPodAutoscaler minReplicas, one HTTP listener port.
func automatedDeployment(m *model.Model, gw *gatewayv1.Gateway) (*GatewayPlan, error) {
	d := xds.DeploymentFor(gw)
	replicas := 1
	if in := gw.Spec.Infrastructure; in != nil && in.ParametersRef != nil && in.ParametersRef.Kind == "ConfigMap" {
		opts := m.ConfigMap(gw.Namespace, in.ParametersRef.Name)
		if opts == nil {
			return nil, fmt.Errorf("Gateway %s/%s: parametersRef ConfigMap %s is not in deploy/", gw.Namespace, gw.Name, in.ParametersRef.Name)
		}
		n, err := xds.MinReplicas(opts)
		if err != nil {
			return nil, fmt.Errorf("ConfigMap %s/%s: %w", gw.Namespace, in.ParametersRef.Name, err)
		}
		replicas = n
	}
	if len(d.Listeners) != 1 || d.Listeners[0].Protocol != "http" {
		return nil, fmt.Errorf("Gateway %s/%s: the local mesh runs one HTTP listener port, not %v", gw.Namespace, gw.Name, d.Listeners)
	}
	l := d.Listeners[0]
	tcp := "tcp"
	return &GatewayPlan{Workload: d.Name, Namespace: gw.Namespace, Service: d.Name, ServiceAccount: d.ServiceAccount,
		Labels: d.PodLabels, Replicas: replicas, Port: l.Port, PortName: l.Name,
		Selector: map[string]string{gatewayNameLabel: gw.Name},
		ServicePorts: []corev1.ServicePort{
			{Name: "status-port", Port: 15021, TargetPort: intstr.FromInt32(15021), Protocol: corev1.ProtocolTCP, AppProtocol: &tcp},
			{Name: l.Name, Port: l.Port, TargetPort: intstr.FromInt32(l.Port), Protocol: corev1.ProtocolTCP, AppProtocol: ptr(l.Protocol)},
		}}, nil
}

// gatewayNameLabel is the label a Gateway API Gateway's pods carry and its Service selects.
const gatewayNameLabel = "gateway.networking.k8s.io/gateway-name"

// pods are the gateway's pods (IPs assigned later).
func (g *GatewayPlan) pods() []*Pod {
	var out []*Pod
	for i := 0; i < g.Replicas; i++ {
		out = append(out, &Pod{
			Name: fmt.Sprintf("%s-%d", g.Workload, i), Namespace: g.Namespace, Role: RoleGateway, WorkloadName: g.Workload,
			ServiceAccount: g.ServiceAccount, Labels: copyLabels(g.Labels), Proxy: true,
			Ports: []corev1.ContainerPort{{Name: g.PortName, ContainerPort: g.Port, Protocol: corev1.ProtocolTCP},
				{Name: "status-port", ContainerPort: 15021, Protocol: corev1.ProtocolTCP}},
		})
	}
	return out
}
