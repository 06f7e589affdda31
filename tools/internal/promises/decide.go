package promises

import (
	"strings"

	security "istio.io/api/security/v1beta1"

	"ordermesh.local/tools/internal/model"
)

// Allows is the static decision for one request, from deploy/'s AuthorizationPolicies as
// check-deploy reads them: may identity src ("namespace/serviceaccount", or "" for a caller with
// no mesh identity) send method+path to the pods of app in namespace dstNS? It is what the live
// tests compare the running mesh with, request by request. A workload no policy selects allows
// everything (Istio's default); otherwise a request is allowed when an ALLOW rule matches it and
// no DENY rule does. Paths match as Istio matches them: exact, "prefix*", "*suffix", "*", and
// the templates {*} (one segment) and {**} (any rest).
func Allows(m *model.Model, src, dstNS, app, method, path string) bool {
	var w *model.Workload
	for _, x := range append(append([]*model.Workload{}, m.Workloads...), m.IngressGateway) {
		if x.Namespace == dstNS && x.App() == app {
			w = x
			break
		}
	}
	if w == nil {
		return false
	}
	selected, allowed := false, false
	for _, ap := range m.AuthorizationPolicies {
		if !selects(m, ap, w) {
			continue
		}
		matched := false
		for _, rule := range ap.Spec.GetRules() {
			if ruleMatches(rule, m.TrustDomain, src, method, path) {
				matched = true
			}
		}
		switch ap.Spec.GetAction() {
		case security.AuthorizationPolicy_DENY:
			if matched {
				return false
			}
		case security.AuthorizationPolicy_ALLOW:
			selected = true
			allowed = allowed || matched
		}
	}
	return !selected || allowed
}

func selects(m *model.Model, ap *model.Istio[*security.AuthorizationPolicy], w *model.Workload) bool {
	for _, t := range targets(m, ap) {
		if t == w {
			return true
		}
	}
	return false
}

func ruleMatches(rule *security.Rule, trustDomain, src, method, path string) bool {
	sourceOK := false
	for _, s := range sourcesOf(rule, trustDomain) {
		ns, _, _ := strings.Cut(src, "/")
		if s == "*" || (src != "" && (s == src || s == ns+"/*")) {
			sourceOK = true
		}
	}
	if !sourceOK {
		return false
	}
	for _, o := range opsOf(rule) {
		if (o.Method == "*" || o.Method == method) && (o.Path == "*" || PathMatches(o.Path, path)) && o.Port == "*" {
			return true
		}
	}
	return false
}

// PathMatches is Istio's AuthorizationPolicy path matching.
func PathMatches(pattern, path string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.Contains(pattern, "{"):
		return templateMatches(strings.Split(pattern, "/"), strings.Split(path, "/"))
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(path, strings.TrimPrefix(pattern, "*"))
	}
	return pattern == path
}

func templateMatches(pattern, path []string) bool {
	for i, seg := range pattern {
		if seg == "{**}" {
			return i < len(path)
		}
		if i >= len(path) {
			return false
		}
		if seg == "{*}" {
			if path[i] == "" {
				return false
			}
			continue
		}
		if seg != path[i] {
			return false
		}
	}
	return len(path) == len(pattern)
}
