// What deploy/'s routes say, read the same way in both routing variants, for the live tests
// and the demos: the Envoy cluster a route sends a subset's traffic to (its name in Envoy's
// stats), payment-service's canary weight and a copy of its route with another weight (to apply
// live through the extra directory), and when a route gives up on a callee that never answers.
package mesh

import (
	"fmt"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"ordermesh.local/tools/internal/manifest"
)

// canarySubset is the canary's subset (istio) and Service suffix (gateway-api).
const canarySubset = "canary"

// RouteCluster is the Envoy cluster deploy/'s routes send Service ns/name's traffic for subset
// to (subset "" for the whole Service): istio routes to the subset's cluster
// (outbound|port|subset|host); Gateway API routes name Services, the per-version Service
// <name>-<subset> where deploy/ has one, else the Service itself (outbound|port||host).
func (ld *Loaded) RouteCluster(ns, name, subset string, port int) string {
	if ld.Routing != manifest.RoutingGatewayAPI {
		return fmt.Sprintf("outbound|%d|%s|%s.%s.svc.%s", port, subset, name, ns, clusterDomain)
	}
	if subset != "" && ld.service(ns, name+"-"+subset) != nil {
		name += "-" + subset
	}
	return fmt.Sprintf("outbound|%d||%s.%s.svc.%s", port, name, ns, clusterDomain)
}

func (ld *Loaded) service(ns, name string) *Service {
	for _, s := range ld.Topology.Services {
		if s.Namespace == ns && s.Name == name {
			return s
		}
	}
	return nil
}

// httpRoute finds the Gateway API HTTPRoute ns/name.
func (ld *Loaded) httpRoute(ns, name string) *gatewayv1.HTTPRoute {
	for _, o := range ld.GatewayAPI {
		if r, ok := o.(*gatewayv1.HTTPRoute); ok && r.Namespace == ns && r.Name == name {
			return r
		}
	}
	return nil
}

// CanaryWeight is the deployed weight of payment-service's canary on its first route in ns.
func (ld *Loaded) CanaryWeight(ns string) (int, error) {
	if ld.Routing == manifest.RoutingGatewayAPI {
		r := ld.httpRoute(ns, "payment-service")
		if r == nil || len(r.Spec.Rules) == 0 {
			return 0, fmt.Errorf("no payment-service HTTPRoute in %s", ns)
		}
		for _, b := range r.Spec.Rules[0].BackendRefs {
			if string(b.Name) == "payment-service-"+canarySubset && b.Weight != nil {
				return int(*b.Weight), nil
			}
		}
		return 0, fmt.Errorf("HTTPRoute %s/payment-service: no weighted canary backend", ns)
	}
	for _, vs := range ld.Model.VirtualServices {
		if vs.Namespace == ns && vs.Name == "payment-service" && len(vs.Spec.GetHttp()) > 0 {
			for _, r := range vs.Spec.GetHttp()[0].GetRoute() {
				if r.GetDestination().GetSubset() == canarySubset {
					return int(r.GetWeight()), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no canary route in VirtualService %s/payment-service", ns)
}

// WithCanaryWeight is deploy/'s payment-service route in ns (VirtualService or HTTPRoute) with
// the canary at weight w on every rule and stable at 100-w, as YAML for the extra directory.
func (ld *Loaded) WithCanaryWeight(ns string, w int) ([]byte, error) {
	if ld.Routing == manifest.RoutingGatewayAPI {
		r := ld.httpRoute(ns, "payment-service")
		if r == nil {
			return nil, fmt.Errorf("no payment-service HTTPRoute in %s", ns)
		}
		r = r.DeepCopy()
		r.APIVersion, r.Kind = gatewayv1.GroupVersion.String(), "HTTPRoute"
		for i := range r.Spec.Rules {
			for j := range r.Spec.Rules[i].BackendRefs {
				b := &r.Spec.Rules[i].BackendRefs[j]
				weight := int32(100 - w)
				if string(b.Name) == "payment-service-"+canarySubset {
					weight = int32(w)
				}
				b.Weight = &weight
			}
		}
		return yaml.Marshal(r)
	}
	for _, vs := range ld.Model.VirtualServices {
		if vs.Namespace == ns && vs.Name == "payment-service" {
			return virtualServiceWithWeight(vs.Object, w)
		}
	}
	return nil, fmt.Errorf("no payment-service VirtualService in %s", ns)
}

func virtualServiceWithWeight(vs *manifest.Object, w int) ([]byte, error) {
	o := vs.Clone()
	spec, _ := o.Obj["spec"].(map[string]any)
	httpRoutes, _ := spec["http"].([]any)
	for _, h := range httpRoutes {
		routes, _ := h.(map[string]any)["route"].([]any)
		for _, r := range routes {
			rm, _ := r.(map[string]any)
			dest, _ := rm["destination"].(map[string]any)
			if dest["subset"] == canarySubset {
				rm["weight"] = int64(w)
			} else {
				rm["weight"] = int64(100 - w)
			}
		}
	}
	return yaml.Marshal(o.Obj)
}

// RouteTimeout is when deploy/'s route of Service ns/name for method gives up on a callee that
// never answers, as Istio programs it: its timeout, or earlier when every attempt (retries + 1)
// has used its per-try timeout; for an HTTPRoute, its backendRequest timeout when set (one
// attempt: see httpRouteTimeout).
func (ld *Loaded) RouteTimeout(ns, name, method string) (time.Duration, error) {
	if ld.Routing == manifest.RoutingGatewayAPI {
		return ld.httpRouteTimeout(ns, name, method)
	}
	for _, vs := range ld.Model.VirtualServices {
		if vs.Namespace != ns || vs.Name != name {
			continue
		}
		for _, h := range vs.Spec.GetHttp() {
			for _, m := range h.GetMatch() {
				if m.GetMethod().GetExact() == method {
					var per time.Duration
					if p := h.GetRetries().GetPerTryTimeout(); p != nil {
						per = p.AsDuration()
					}
					return earliest(h.GetTimeout().AsDuration(), per, int(h.GetRetries().GetAttempts())), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no %s route in VirtualService %s/%s", method, ns, name)
}

func (ld *Loaded) httpRouteTimeout(ns, name, method string) (time.Duration, error) {
	r := ld.httpRoute(ns, name)
	if r == nil {
		return 0, fmt.Errorf("no HTTPRoute %s/%s", ns, name)
	}
	for _, rule := range r.Spec.Rules {
		for _, m := range rule.Matches {
			if m.Method == nil || string(*m.Method) != method || rule.Timeouts == nil || rule.Timeouts.Request == nil {
				continue
			}
			total, err := time.ParseDuration(string(*rule.Timeouts.Request))
			if err != nil {
				return 0, err
			}
			var per time.Duration
			if b := rule.Timeouts.BackendRequest; b != nil {
				if per, err = time.ParseDuration(string(*b)); err != nil {
					return 0, err
				}
			}
			// Istio turns backendRequest into the retries' perTryTimeout, but its retryOn for
			// an HTTPRoute (connect-failure, refused-stream, unavailable, cancelled and the
			// listed status codes) has no condition a per-try timeout meets: the first attempt
			// timing out ends the request.
			return earliest(total, per, 0), nil
		}
	}
	return 0, fmt.Errorf("no %s rule with a request timeout in HTTPRoute %s/%s", method, ns, name)
}

// earliest is the route timeout, or retries+1 per-try timeouts when that is sooner.
func earliest(total, perTry time.Duration, retries int) time.Duration {
	if perTry > 0 {
		if all := time.Duration(retries+1) * perTry; all < total {
			return all
		}
	}
	return total
}
