// The Kubernetes Gateway API in the local mesh's control plane: istiod's Gateway API controller
// (which pilot/test/xds builds over its fake API server) reads Gateways and HTTPRoutes as
// Kubernetes objects, so they go in — and are changed live — through that client, never the
// Istio config store. This file also derives the gateway pod Istio's automated deployment
// (pilot/pkg/config/kube/gatewaycommon, the kube-gateway template) would create for a Gateway.
package xds

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kuberuntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"istio.io/api/annotation"
	"istio.io/api/label"
	"istio.io/istio/pilot/pkg/config/kube/gatewaycommon"
	"istio.io/istio/pilot/pkg/features"
)

// GatewayClass is the class `istio` as istiod's class controller writes it into a cluster (the
// fake server does not run that controller).
func GatewayClass() *gatewayv1.GatewayClass {
	ctrl := gatewayv1.GatewayController(features.ManagedGatewayController)
	desc := gatewaycommon.ClassInfos[ctrl].Description
	return &gatewayv1.GatewayClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: "GatewayClass"},
		ObjectMeta: metav1.ObjectMeta{Name: features.GatewayAPIDefaultGatewayClass},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: ctrl, Description: &desc},
	}
}

// GatewayDeployment is what Istio's automated deployment creates for a Gateway of class istio.
type GatewayDeployment struct {
	Name           string            // the Deployment's and the Service's name (<gateway>-<class>)
	ServiceAccount string            // the gateway.istio.io/service-account annotation, else Name
	PodLabels      map[string]string // the kube-gateway template's pod labels
	Listeners      []GatewayPort     // one per distinct listener port (what Envoy binds)
}

// GatewayPort is one of the Service's listener ports.
type GatewayPort struct {
	Name     string
	Port     int32
	Protocol string // lower case, the Service port's appProtocol
}

// DeploymentFor derives gw's automated deployment with Istio's own names and labels.
func DeploymentFor(gw *gatewayv1.Gateway) GatewayDeployment {
	name := gatewaycommon.GetDefaultName(gw.Name, &gw.Spec, false)
	d := GatewayDeployment{Name: name, ServiceAccount: name, PodLabels: map[string]string{
		"sidecar.istio.io/inject":             "false",
		"service.istio.io/canonical-name":     name,
		"service.istio.io/canonical-revision": "latest",
	}}
	if sa := gw.Annotations[annotation.GatewayServiceAccount.Name]; sa != "" {
		d.ServiceAccount = sa
	}
	if in := gw.Spec.Infrastructure; in != nil {
		for k, v := range in.Labels {
			if !strings.HasPrefix(string(k), "gateway.networking.k8s.io/") {
				d.PodLabels[string(k)] = string(v)
			}
		}
	}
	d.PodLabels[label.IoK8sNetworkingGatewayGatewayName.Name] = gw.Name
	d.PodLabels["gateway.networking.k8s.io/gateway-class-name"] = string(gw.Spec.GatewayClassName)
	d.PodLabels["gateway.istio.io/managed"] = "istio.io-gateway-controller"
	seen := map[int32]bool{}
	for _, l := range gw.Spec.Listeners {
		if seen[int32(l.Port)] {
			continue
		}
		seen[int32(l.Port)] = true
		d.Listeners = append(d.Listeners, GatewayPort{Name: string(l.Name), Port: int32(l.Port), Protocol: strings.ToLower(string(l.Protocol))})
	}
	return d
}

// MinReplicas reads the horizontalPodAutoscaler overlay of a Gateway's options ConfigMap (its
// spec.minReplicas), as the automated deployment sizes the Deployment; 1 without one.
func MinReplicas(options map[string]string) (int, error) {
	raw, ok := options["horizontalPodAutoscaler"]
	if !ok {
		return 1, nil
	}
	var hpa struct {
		Spec struct {
			MinReplicas *int `json:"minReplicas"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(raw), &hpa); err != nil {
		return 0, fmt.Errorf("horizontalPodAutoscaler: %w", err)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 1 {
		return 1, nil
	}
	return *hpa.Spec.MinReplicas, nil
}

// gatewayAPIKey identifies a Gateway API object.
func gatewayAPIKey(o kuberuntime.Object) string {
	m, _ := o.(metav1.Object)
	return fmt.Sprintf("%T/%s/%s", o, m.GetNamespace(), m.GetName())
}

// replaceGatewayAPI makes the fake API server hold exactly the Gateways and HTTPRoutes of
// want (the GatewayClass stays), through the Gateway API clientset as kubectl would.
func (s *Server) replaceGatewayAPI(want []kuberuntime.Object) (int, error) {
	ctx := context.Background()
	gw := s.fake.KubeClient().GatewayAPI().GatewayV1()
	wanted := map[string]kuberuntime.Object{}
	for _, o := range want {
		wanted[gatewayAPIKey(o)] = o.DeepCopyObject()
	}
	changed := 0
	routes, err := gw.HTTPRoutes(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	for i := range routes.Items {
		have := &routes.Items[i]
		w, ok := wanted[gatewayAPIKey(have)].(*gatewayv1.HTTPRoute)
		delete(wanted, gatewayAPIKey(have))
		switch {
		case !ok:
			err = gw.HTTPRoutes(have.Namespace).Delete(ctx, have.Name, metav1.DeleteOptions{})
		case !equality.Semantic.DeepEqual(w.Spec, have.Spec):
			next := have.DeepCopy()
			next.Spec = *w.Spec.DeepCopy()
			_, err = gw.HTTPRoutes(have.Namespace).Update(ctx, next, metav1.UpdateOptions{})
		default:
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("HTTPRoute %s/%s: %w", have.Namespace, have.Name, err)
		}
		changed++
	}
	gws, err := gw.Gateways(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return changed, err
	}
	for i := range gws.Items {
		have := &gws.Items[i]
		w, ok := wanted[gatewayAPIKey(have)].(*gatewayv1.Gateway)
		delete(wanted, gatewayAPIKey(have))
		switch {
		case !ok:
			err = gw.Gateways(have.Namespace).Delete(ctx, have.Name, metav1.DeleteOptions{})
		case !equality.Semantic.DeepEqual(w.Spec, have.Spec):
			next := have.DeepCopy()
			next.Spec = *w.Spec.DeepCopy()
			_, err = gw.Gateways(have.Namespace).Update(ctx, next, metav1.UpdateOptions{})
		default:
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("Gateway %s/%s: %w", have.Namespace, have.Name, err)
		}
		changed++
	}
	for _, o := range wanted {
		switch w := o.(type) {
		case *gatewayv1.HTTPRoute:
			_, err = gw.HTTPRoutes(w.Namespace).Create(ctx, w.DeepCopy(), metav1.CreateOptions{})
		case *gatewayv1.Gateway:
			_, err = gw.Gateways(w.Namespace).Create(ctx, w.DeepCopy(), metav1.CreateOptions{})
		default:
			err = fmt.Errorf("the local mesh changes only Gateways and HTTPRoutes live")
		}
		if err != nil {
			return changed, fmt.Errorf("create %s: %w", gatewayAPIKey(o), err)
		}
		changed++
	}
	return changed, nil
}
