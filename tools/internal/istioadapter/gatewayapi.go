package istioadapter

// Istio's own conversion of Kubernetes Gateway API objects (Gateways, HTTPRoutes, …) into its
// configuration: istiod's Gateway API controller (pilot/pkg/config/kube/gateway) runs over a
// fake Kubernetes client holding the objects, its status writes go through istiod's own status
// manager and CRD client into that fake client, and both the generated VirtualServices/Gateways
// and the routes' and gateways' status conditions are read back.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metadatafake "k8s.io/client-go/metadata/fake"
	clienttesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayapifake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
	"sigs.k8s.io/gateway-api/pkg/consts"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pilot/pkg/config/kube/crdclient"
	"istio.io/istio/pilot/pkg/config/kube/gateway"
	"istio.io/istio/pilot/pkg/features"
	pilotmodel "istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/serviceregistry/kube/controller"
	"istio.io/istio/pilot/pkg/status"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/config/schema/gvr"
	"istio.io/istio/pkg/kube"
)

// IstioGatewayClass is the GatewayClass Istio's class controller creates for its gateways.
const IstioGatewayClass = "istio"

// Converted is one Istio config generated from Gateway API objects.
type Converted struct {
	Namespace, Name string
	// Parents are the Gateway API objects it was generated from, as "Kind namespace/name"
	// (Istio's internal.istio.io/parents annotation).
	Parents []string
	Spec    proto.Message
}

// Condition is one status condition Istio wrote.
type Condition struct{ Type, Status, Reason, Message string }

// GatewayAPIStatus is the status Istio wrote on one Gateway API object: the object's own
// conditions (a Gateway's, then each listener's as "listener <name>: <type>") or, for a route,
// one entry per parentRef.
type GatewayAPIStatus struct {
	Kind, Namespace, Name string
	Conditions            []Condition
	Parents               map[string][]Condition // route: "Kind ns/name[/section]" -> conditions
}

// Ref is "Kind namespace/name".
func (s GatewayAPIStatus) Ref() string { return s.Kind + " " + s.Namespace + "/" + s.Name }

// GatewayAPIResult is what istiod makes of the Gateway API objects.
type GatewayAPIResult struct {
	VirtualServices []Converted // *networking.VirtualService
	Gateways        []Converted // *networking.Gateway
	Statuses        []GatewayAPIStatus
}

// gatewayAPIResources are the Gateway API kinds the controller waits for (their CRDs exist).
var gatewayAPIResources = []schema.GroupVersionResource{
	gvr.KubernetesGateway, gvr.ReferenceGrant, gvr.ListenerSet, gvr.GatewayClass, gvr.HTTPRoute,
	gvr.GRPCRoute, gvr.TCPRoute, gvr.TLSRoute, gvr.ServiceEntry, gvr.XBackendTrafficPolicy,
	gvr.BackendTLSPolicy, gvr.InferencePool,
}

// ConvertGatewayAPI runs istiod's Gateway API controller over objs (Namespaces, Services and
// the Gateway API objects, typed) and returns the Istio configs it generates and the status it
// writes. A GatewayClass "istio" is added when objs hold none, as istiod's class controller
// creates it in a cluster.
func ConvertGatewayAPI(objs []runtime.Object, domainSuffix string, wait time.Duration) (*GatewayAPIResult, error) {
	objs = withIstioClass(objs)
	kc := kube.NewFakeClient(objs...)
	if err := registerCRDs(kc); err != nil {
		return nil, err
	}
	if err := statusSubresource(kc); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	defer close(stop)
	// waitForCRD gates only istiod's GatewayClass controller: the class is given (withIstioClass),
	// so that controller does not run (it would race its own informer creating istio-remote).
	noClassController := func(schema.GroupVersionResource, <-chan struct{}) bool { return false }
	ctl := gateway.NewController(kc, noClassController,
		controller.Options{DomainSuffix: domainSuffix, SystemNamespace: "istio-system"}, nil)
	store := crdclient.New(kc, crdclient.Option{DomainSuffix: domainSuffix})
	mgr := status.NewManager(store)
	ctl.SetStatusWrite(true, mgr)
	kc.RunAndWait(stop)
	go store.Run(stop)
	go ctl.Run(stop)
	mgr.Start(stop)
	ctl.Reconcile(pilotmodel.NewPushContext())
	if !kube.WaitForCacheSync("gateway-api conversion", timeoutChan(stop, wait), ctl.HasSynced, store.HasSynced) {
		return nil, fmt.Errorf("istiod's Gateway API controller did not sync within %s", wait)
	}
	res := &GatewayAPIResult{
		VirtualServices: converted(ctl.List(gvk.VirtualService, "")),
		Gateways:        converted(ctl.List(gvk.Gateway, "")),
	}
	res.Statuses = waitForStatuses(kc, objs, wait)
	return res, nil
}

func withIstioClass(objs []runtime.Object) []runtime.Object {
	for _, o := range objs {
		if _, ok := o.(*gatewayv1.GatewayClass); ok {
			return objs
		}
	}
	class := &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: IstioGatewayClass},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: gatewayv1.GatewayController(features.ManagedGatewayController)},
	}
	return append(append([]runtime.Object(nil), objs...), class)
}

// registerCRDs makes the Gateway API CRDs exist in the fake client (its metadata client is what
// the controller's informers consult), as installing them does in a cluster.
func registerCRDs(kc kube.Client) error {
	fmc, ok := kc.Metadata().(*metadatafake.FakeMetadataClient)
	if !ok {
		return fmt.Errorf("not a fake Kubernetes client")
	}
	fmd, ok := fmc.Resource(gvr.CustomResourceDefinition).(metadatafake.MetadataClient)
	if !ok {
		return fmt.Errorf("fake metadata client without CustomResourceDefinitions")
	}
	for _, r := range gatewayAPIResources {
		obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
			Name:        r.Resource + "." + r.Group,
			Annotations: map[string]string{consts.BundleVersionAnnotation: consts.BundleVersion},
		}}
		if _, err := fmd.CreateFake(obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("registering CRD %s: %w", obj.Name, err)
		}
	}
	return nil
}

// statusSubresource makes the fake Gateway API client treat UpdateStatus as the API server
// does: only the status is written, the spec stays (istiod's CRD client sends the status with
// the object's metadata only; the plain fake would store that empty spec).
func statusSubresource(kc kube.Client) error {
	fc, ok := kc.GatewayAPI().(*gatewayapifake.Clientset)
	if !ok {
		return fmt.Errorf("not a fake Gateway API client")
	}
	tracker := fc.Tracker()
	fc.PrependReactor("update", "*", func(action clienttesting.Action) (bool, runtime.Object, error) {
		ua, ok := action.(clienttesting.UpdateAction)
		if !ok || ua.GetSubresource() != "status" {
			return false, nil, nil
		}
		in, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ua.GetObject())
		if err != nil {
			return true, nil, err
		}
		name, _, _ := unstructured.NestedString(in, "metadata", "name")
		cur, err := tracker.Get(ua.GetResource(), ua.GetNamespace(), name)
		if err != nil {
			return true, nil, err
		}
		out, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cur)
		if err != nil {
			return true, nil, err
		}
		out["status"] = in["status"]
		merged := cur.DeepCopyObject()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(out, merged); err != nil {
			return true, nil, err
		}
		return true, merged, tracker.Update(ua.GetResource(), merged, ua.GetNamespace())
	})
	return nil
}

func timeoutChan(stop <-chan struct{}, d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		select {
		case <-stop:
		case <-time.After(d):
		}
	}()
	return ch
}

func converted(cfgs []config.Config) []Converted {
	out := make([]Converted, 0, len(cfgs))
	for _, c := range cfgs {
		spec, _ := c.Spec.(proto.Message)
		out = append(out, Converted{Namespace: c.Namespace, Name: c.Name, Parents: parentsOf(c), Spec: spec})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out
}

// parentsOf reads Istio's internal.istio.io/parents annotation: "Kind/name[/section].ns,...".
func parentsOf(c config.Config) []string {
	var out []string
	for _, p := range strings.Split(c.Annotations[constants.InternalParentNames], ",") {
		kind, rest, ok := strings.Cut(p, "/")
		if !ok {
			continue
		}
		dot := strings.LastIndex(rest, ".")
		if dot < 0 {
			continue
		}
		name, ns := rest[:dot], rest[dot+1:]
		name, _, _ = strings.Cut(name, "/") // drop a section name
		out = append(out, kind+" "+ns+"/"+name)
	}
	return out
}

// waitForStatuses polls the fake client until every Gateway has its conditions and every route
// one status per parentRef (or wait passes), and returns what Istio wrote.
func waitForStatuses(kc kube.Client, objs []runtime.Object, wait time.Duration) []GatewayAPIStatus {
	deadline := time.Now().Add(wait)
	for {
		sts, complete := readStatuses(kc, objs)
		if complete || time.Now().After(deadline) {
			return sts
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readStatuses(kc kube.Client, objs []runtime.Object) ([]GatewayAPIStatus, bool) {
	ctx := context.Background()
	api := kc.GatewayAPI().GatewayV1()
	var out []GatewayAPIStatus
	complete := true
	for _, o := range objs {
		switch t := o.(type) {
		case *gatewayv1.Gateway:
			gw, err := api.Gateways(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			st := GatewayAPIStatus{Kind: "Gateway", Namespace: t.Namespace, Name: t.Name, Conditions: conditions("", gw.Status.Conditions)}
			for _, l := range gw.Status.Listeners {
				st.Conditions = append(st.Conditions, conditions("listener "+string(l.Name)+": ", l.Conditions)...)
			}
			complete = complete && len(gw.Status.Conditions) > 0 && len(gw.Status.Listeners) == len(t.Spec.Listeners)
			out = append(out, st)
		case *gatewayv1.HTTPRoute:
			rt, err := api.HTTPRoutes(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			st := GatewayAPIStatus{Kind: "HTTPRoute", Namespace: t.Namespace, Name: t.Name, Parents: map[string][]Condition{}}
			for _, p := range rt.Status.Parents {
				st.Parents[parentRefString(p.ParentRef, t.Namespace)] = conditions("", p.Conditions)
			}
			complete = complete && len(rt.Status.Parents) >= len(t.Spec.ParentRefs)
			out = append(out, st)
		}
	}
	return out, complete
}

func conditions(prefix string, cs []metav1.Condition) []Condition {
	var out []Condition
	for _, c := range cs {
		out = append(out, Condition{Type: prefix + c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message})
	}
	return out
}

func parentRefString(p gatewayv1.ParentReference, routeNS string) string {
	kind := "Gateway"
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	ns := routeNS
	if p.Namespace != nil {
		ns = string(*p.Namespace)
	}
	s := kind + " " + ns + "/" + string(p.Name)
	if p.SectionName != nil {
		s += "/" + string(*p.SectionName)
	}
	return s
}

// VirtualServiceOf is a converted config's spec as a VirtualService (nil otherwise).
func VirtualServiceOf(c Converted) *networking.VirtualService {
	vs, _ := c.Spec.(*networking.VirtualService)
	return vs
}

// GatewayOf is a converted config's spec as a Gateway (nil otherwise).
func GatewayOf(c Converted) *networking.Gateway {
	gw, _ := c.Spec.(*networking.Gateway)
	return gw
}
