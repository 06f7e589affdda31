package istioadapter

import (
	"context"
	"fmt"
	"io"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kubeyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

// crdValidator validates custom resources against Istio's CRDs the way istio.io/istio's
// pkg/config/crd.Validator.ValidateCustomResource does (same Kubernetes apiextensions calls:
// defaulting, OpenAPI schema, list-type rules, pruning for unknown fields, CEL rules).
//
// Why a copy instead of calling pkg/config/crd: that package imports pkg/test/env, whose
// package initialisation logs "unable to resolve TARGET_OUT" to stdout in every binary that
// links it, which would corrupt `check-deploy -format json`. TestCRDValidatorMatchesIstio
// runs Istio's own validator on the same fixtures and requires identical verdicts.
type crdValidator struct {
	byGvk      map[schema.GroupVersionKind]validation.SchemaCreateValidator
	structural map[schema.GroupVersionKind]*structuralschema.Structural
	cel        map[schema.GroupVersionKind]*cel.Validator
}

func newCRDValidator(r io.Reader) (*crdValidator, error) {
	v := &crdValidator{
		byGvk:      map[schema.GroupVersionKind]validation.SchemaCreateValidator{},
		structural: map[schema.GroupVersionKind]*structuralschema.Structural{},
		cel:        map[schema.GroupVersionKind]*cel.Validator{},
	}
	dec := kubeyaml.NewYAMLOrJSONDecoder(r, 512*1024)
	for {
		un := &unstructured.Unstructured{}
		err := dec.Decode(un)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if un.GroupVersionKind() != apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition") {
			continue
		}
		crdv1 := apiextensionsv1.CustomResourceDefinition{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(un.UnstructuredContent(), &crdv1); err != nil {
			return nil, err
		}
		crd := apiextensions.CustomResourceDefinition{}
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&crdv1, &crd, nil); err != nil {
			return nil, err
		}
		for _, ver := range crd.Spec.Versions {
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: ver.Name, Kind: crd.Spec.Names.Kind}
			s := ver.Schema
			if s == nil {
				s = crd.Spec.Validation
			}
			if s == nil {
				return nil, fmt.Errorf("CRD %s has no schema", crd.Name)
			}
			sv, _, err := validation.NewSchemaValidator(s.OpenAPIV3Schema)
			if err != nil {
				return nil, err
			}
			st, err := structuralschema.NewStructural(s.OpenAPIV3Schema)
			if err != nil {
				return nil, err
			}
			v.byGvk[gvk] = sv
			v.structural[gvk] = st
			if celv := cel.NewValidator(st, true, celconfig.PerCallLimit); celv != nil {
				v.cel[gvk] = celv
			}
		}
	}
	return v, nil
}

// validate returns nil or one error describing every violation of the CRD schema.
func (v *crdValidator) validate(un *unstructured.Unstructured) error {
	gvk := un.GroupVersionKind()
	sv, ok := v.byGvk[gvk]
	if !ok {
		return fmt.Errorf("no CRD schema for %v", gvk)
	}
	id := fmt.Sprintf("%v/%v/%v", gvk.Kind, un.GetName(), un.GetNamespace())
	st := v.structural[gvk]
	structuraldefaulting.Default(un.Object, st)
	if err := validation.ValidateCustomResource(nil, un.Object, sv).ToAggregate(); err != nil {
		return fmt.Errorf("%s: %v", id, err)
	}
	if err := structurallisttype.ValidateListSetsAndMaps(nil, st, un.Object).ToAggregate(); err != nil {
		return fmt.Errorf("%s: %v", id, err)
	}
	unknown := structuralpruning.PruneWithOptions(un.DeepCopy().Object, st, false,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	var kept []string
	for _, p := range unknown {
		// Some CRDs don't spell out all of metadata, and Kubernetes doesn't care.
		if !strings.HasPrefix(p, "metadata.") {
			kept = append(kept, p)
		}
	}
	if len(kept) > 0 {
		return fmt.Errorf("%s: unknown fields %v", id, kept)
	}
	if celv := v.cel[gvk]; celv != nil {
		errs, _ := celv.Validate(context.Background(), nil, st, un.Object, nil, celconfig.RuntimeCELCostBudget)
		if errs.ToAggregate() != nil {
			return fmt.Errorf("%s: %v", id, errs.ToAggregate().Error())
		}
	}
	return nil
}
