package promises

// Lookups the promise checks share: a tenant's call-graph edges resolved to host names, the
// DestinationRules of a host and a subset's effective policy as Istio merges it, whether a
// VirtualService is bound to the ingress gateway, and a workload's literal env values.

import (
	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"

	"ordermesh.local/tools/internal/callgraph"
	"ordermesh.local/tools/internal/model"
)

// hostEdge is one call-graph edge resolved for a tenant: the caller's namespace and app ("" for
// the ingress gateway) and the callee's full host name.
type hostEdge struct {
	callerNS, callerApp string
	host                string
	edge                callgraph.Edge
}

func tenantEdges(m *model.Model, t *model.Tenant) []hostEdge {
	var out []hostEdge
	for _, e := range callgraph.Edges {
		to := t.NamespaceFor(e.ToRole)
		if to == "" {
			continue
		}
		from := callgraph.Gateway.Namespace
		if e.From != "" {
			from = t.NamespaceFor(e.FromRole)
		}
		out = append(out, hostEdge{callerNS: from, callerApp: e.From, host: m.FQDN(e.To, to), edge: e})
	}
	return out
}

func destinationRulesFor(m *model.Model, host string) []*model.Istio[*networking.DestinationRule] {
	var out []*model.Istio[*networking.DestinationRule]
	for _, dr := range m.DestinationRules {
		if m.FQDN(dr.Spec.GetHost(), dr.Namespace) == host {
			out = append(out, dr)
		}
	}
	return out
}

// mergeSubset is Istio's MergeTrafficPolicy: a subset's fields replace the host's, field by field.
func mergeSubset(host, subset *networking.TrafficPolicy) *networking.TrafficPolicy {
	if subset == nil {
		return host
	}
	out := &networking.TrafficPolicy{}
	if host != nil {
		out.LoadBalancer, out.ConnectionPool, out.OutlierDetection = host.GetLoadBalancer(), host.GetConnectionPool(), host.GetOutlierDetection()
	}
	if subset.GetLoadBalancer() != nil {
		out.LoadBalancer = subset.GetLoadBalancer()
	}
	if subset.GetConnectionPool() != nil {
		out.ConnectionPool = subset.GetConnectionPool()
	}
	if subset.GetOutlierDetection() != nil {
		out.OutlierDetection = subset.GetOutlierDetection()
	}
	return out
}

func boundToIngress(vs *model.Istio[*networking.VirtualService]) bool {
	for _, g := range vs.Spec.GetGateways() {
		if g != "mesh" {
			return true
		}
	}
	return false
}

// policyTargetRefs is a policy's targetRef and targetRefs together.
func policyTargetRefs(one *typev1beta1.PolicyTargetReference, many []*typev1beta1.PolicyTargetReference) []*typev1beta1.PolicyTargetReference {
	if one != nil {
		return append([]*typev1beta1.PolicyTargetReference{one}, many...)
	}
	return many
}

// env is the literal value of a container env var of the workload ("" when unset).
func env(w *model.Workload, name string) (string, bool) {
	for _, c := range w.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == name && e.ValueFrom == nil {
				return e.Value, true
			}
		}
	}
	return "", false
}
