package model

import (
	"encoding/json"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"istio.io/api/annotation"
	"istio.io/api/label"
)

// InjectionEnabled reports whether a namespace is labelled for sidecar injection
// (istio-injection=enabled for the default revision, or istio.io/rev=<rev>).
func (m *Model) InjectionEnabled(ns string) bool {
	n := m.Namespaces[ns]
	if n == nil {
		return false
	}
	if v, ok := n.Labels["istio-injection"]; ok {
		return v == "enabled"
	}
	_, rev := n.Labels[label.IoIstioRev.Name]
	return rev
}

// OptsOut reports whether a pod template disables injection.
func (w *Workload) OptsOut() bool {
	if v, ok := w.Template.Labels[label.SidecarInject.Name]; ok {
		return v == "false"
	}
	return w.Template.Annotations[annotation.SidecarInject.Name] == "false"
}

// Injected reports whether the sidecar injector would add a proxy to the workload's pods.
func (m *Model) Injected(w *Workload) bool { return m.InjectionEnabled(w.Namespace) && !w.OptsOut() }

// SynthesizePods returns one Pod per workload as the cluster would run it: the pod template,
// and when the namespace is injection-enabled and the pod does not opt out, what Istio's
// injector adds that the analyzers look at (istio-proxy container, tlsMode and canonical
// labels, sidecar status annotation). proxyImage is the proxyv2 image of the install.
func (m *Model) SynthesizePods(proxyImage string) ([]SyntheticPod, error) {
	var out []SyntheticPod
	gw := m.IngressGateway
	gwPod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: gw.Name + "-synthetic-0", Namespace: gw.Namespace, Labels: maps.Clone(gw.PodLabels)},
		Spec:       *gw.Template.Spec.DeepCopy(),
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	gwPod.Spec.Containers[0].Image = proxyImage
	y, err := yaml.Marshal(&gwPod)
	if err != nil {
		return nil, err
	}
	out = append(out, SyntheticPod{Source: gw.Source, Ref: "Pod " + gw.Namespace + "/" + gwPod.Name, YAML: y})
	for _, w := range m.Workloads {
		pod := corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("%s-synthetic-0", w.Name),
				Namespace:   w.Namespace,
				Labels:      maps.Clone(w.Template.Labels),
				Annotations: maps.Clone(w.Template.Annotations),
			},
			Spec: *w.Template.Spec.DeepCopy(),
		}
		if m.Injected(w) {
			pod.Labels = m.PodLabels(w)
			pod.Annotations = m.PodAnnotations(w)
			uid := int64(1337)
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{
				Name: "istio-init", Image: proxyImage, Args: []string{"istio-iptables"},
			})
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
				Name: "istio-proxy", Image: proxyImage, Args: []string{"proxy", "sidecar"},
				Ports:           []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: 15090, Protocol: corev1.ProtocolTCP}},
				SecurityContext: &corev1.SecurityContext{RunAsUser: &uid, RunAsGroup: &uid},
			})
		}
		pod.Status.Phase = corev1.PodRunning
		y, err := yaml.Marshal(&pod)
		if err != nil {
			return nil, err
		}
		out = append(out, SyntheticPod{Source: w.Source, Ref: "Pod " + pod.Namespace + "/" + pod.Name, YAML: y})
	}
	return out, nil
}

// PodLabels are the labels of the workload's pods as they run: the template's, plus what
// Istio's injector adds when the pod gets a sidecar (tlsMode, canonical service name and
// revision). Without tlsMode=istio, callers' auto-mTLS would send plaintext.
func (m *Model) PodLabels(w *Workload) map[string]string {
	labels := maps.Clone(w.Template.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if !m.Injected(w) {
		return labels
	}
	canonical := w.Template.Labels["app"]
	if canonical == "" {
		canonical = w.Name
	}
	rev := w.Template.Labels["version"]
	if rev == "" {
		rev = "latest"
	}
	labels[label.SecurityTlsMode.Name] = "istio"
	labels[label.ServiceCanonicalName.Name] = canonical
	labels[label.ServiceCanonicalRevision.Name] = rev
	return labels
}

// PodAnnotations are the template's annotations, plus the injector's sidecar status when the
// pod gets a sidecar.
func (m *Model) PodAnnotations(w *Workload) map[string]string {
	ann := maps.Clone(w.Template.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	if m.Injected(w) {
		status, _ := json.Marshal(map[string]any{
			"initContainers": []string{"istio-init"}, "containers": []string{"istio-proxy"},
			"volumes": []string{"istio-envoy", "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"},
		})
		ann[annotation.SidecarStatus.Name] = string(status)
	}
	return ann
}

// SyntheticPod is a Pod made from a workload; Source is the workload's render unit.
type SyntheticPod struct {
	Source, Ref string
	YAML        []byte
}
