package checkdeploy

// How a negative case breaks the render of deploy/: objects added (addYAML), and patches as
// data — a patch names the objects it changes as findings name them ("DestinationRule
// tenant-a-payments/payment-service"), a path into each object and what to do there.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"ordermesh.local/tools/internal/manifest"
)

// patch is one change to rendered objects. on is "Kind namespace/name", "Kind namespace/*" for
// every object of that kind in the namespace (at least one), or "IstioOperator" for the mesh
// install (deploy/mesh/istio-operator.yaml, which is not among the rendered objects).
type patch struct {
	on    string
	op    patchOp
	path  string // see resolve
	value any    // opSet, opAppend: the value; opReplace: [2]string{from, to}; opRename: the new name
}

type patchOp int

const (
	opSet     patchOp = iota // set path to value, creating missing maps on the way
	opDel                    // delete the field at path (it must exist)
	opAppend                 // append value to the list at path
	opReplace                // every string equal to from at or under path becomes to (at least one)
	opRename                 // rename the field at path to value (a typo)
	opRemove                 // remove the objects from the render (no path)
)

func set(on, path string, v any) patch      { return patch{on, opSet, path, v} }
func del(on, path string) patch             { return patch{on, opDel, path, nil} }
func appendTo(on, path string, v any) patch { return patch{on, opAppend, path, v} }
func replace(on, path, from, to string) patch {
	return patch{on, opReplace, path, [2]string{from, to}}
}
func rename(on, path, to string) patch { return patch{on, opRename, path, to} }
func remove(on string) patch           { return patch{on: on, op: opRemove} }

// istioOperator is the patch target for the mesh install.
const istioOperator = "IstioOperator"

// applyPatches applies the patches in order to b.
func applyPatches(t *testing.T, b *manifest.Bundle, patches ...patch) {
	t.Helper()
	for _, p := range patches {
		if p.on == istioOperator {
			patchOperator(t, b, p)
			continue
		}
		for _, o := range selectObjects(t, b, p.on) {
			if p.op == opRemove {
				removeObject(t, b, o)
				continue
			}
			patchObject(t, o.Obj, p)
		}
	}
}

func overlay(t *testing.T, b *manifest.Bundle, name string) *manifest.Unit {
	t.Helper()
	if name == "mesh" {
		return b.Mesh
	}
	for _, u := range b.Overlays {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("no overlay %s", name)
	return nil
}

// addYAML adds the YAML objects y to the render of unit (an overlay, or "mesh").
func addYAML(t *testing.T, b *manifest.Bundle, unit, y string) {
	t.Helper()
	u := overlay(t, b, unit)
	objs, err := manifest.ParseDocs([]byte(y), u.Dir)
	if err != nil {
		t.Fatal(err)
	}
	u.Objects = append(u.Objects, objs...)
}

// selectObjects returns the rendered objects `on` names; none is a broken case.
func selectObjects(t *testing.T, b *manifest.Bundle, on string) []*manifest.Object {
	t.Helper()
	kind, ref, ok := strings.Cut(on, " ")
	ns, name, ok2 := strings.Cut(ref, "/")
	if !ok || !ok2 {
		t.Fatalf("patch target %q is not \"Kind namespace/name\"", on)
	}
	var out []*manifest.Object
	for _, o := range b.Objects() {
		if o.Kind() == kind && o.Namespace() == ns && (name == "*" || o.Name() == name) {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s in the render of deploy/", on)
	}
	return out
}

func removeObject(t *testing.T, b *manifest.Bundle, target *manifest.Object) {
	t.Helper()
	for _, u := range b.Units() {
		for i, o := range u.Objects {
			if o == target {
				u.Objects = append(u.Objects[:i], u.Objects[i+1:]...)
				return
			}
		}
	}
	t.Fatalf("object %s not in bundle", target.Ref())
}

func patchOperator(t *testing.T, b *manifest.Bundle, p patch) {
	t.Helper()
	var op map[string]any
	if err := yaml.Unmarshal(b.Operator, &op); err != nil {
		t.Fatal(err)
	}
	patchObject(t, op, p)
	out, err := yaml.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	b.Operator = out
}

func patchObject(t *testing.T, obj map[string]any, p patch) {
	t.Helper()
	slots := resolve(t, obj, p.path, p.op == opSet)
	replaced := 0
	for _, s := range slots {
		v, exists := s.get()
		switch p.op {
		case opSet:
			s.set(manifest.DeepCopy(p.value))
		case opDel:
			if s.m == nil || !exists {
				t.Fatalf("%s: del %s: no such field", p.on, p.path)
			}
			delete(s.m, s.key)
		case opAppend:
			list, ok := v.([]any)
			if !ok {
				t.Fatalf("%s: %s is not a list", p.on, p.path)
			}
			s.set(append(list, manifest.DeepCopy(p.value)))
		case opReplace:
			if !exists {
				continue // e.g. [*] over elements of which only some have the field
			}
			ft := p.value.([2]string)
			nv, n := replaceStrings(v, ft[0], ft[1])
			s.set(nv)
			replaced += n
		case opRename:
			if s.m == nil || !exists {
				t.Fatalf("%s: rename %s: no such field", p.on, p.path)
			}
			delete(s.m, s.key)
			s.m[p.value.(string)] = v
		default:
			t.Fatalf("%s: patch op %d takes no path", p.on, p.op)
		}
	}
	if p.op == opReplace && replaced == 0 {
		t.Fatalf("%s: no %q at %s", p.on, p.value.([2]string)[0], p.path)
	}
}

// slot is a place a path names: a field of a map or an element of a list.
type slot struct {
	m    map[string]any
	key  string
	list []any
	i    int
}

func (s slot) get() (any, bool) {
	if s.m != nil {
		v, ok := s.m[s.key]
		return v, ok
	}
	return s.list[s.i], true
}

func (s slot) set(v any) {
	if s.m != nil {
		s.m[s.key] = v
	} else {
		s.list[s.i] = v
	}
}

// resolve returns the places path names in obj. A path is fields joined by dots, each field
// optionally followed by selectors in brackets:
//
//	spec.http[1].retries                        an index
//	spec.tracing[*].providers                   every element
//	spec.http[name=read].timeout                the elements whose field name is "read"
//	spec.template.metadata.annotations["a.b/c"] a field whose name holds dots
//
// Every step must match something; with create (opSet), missing fields on the way become maps.
func resolve(t *testing.T, obj map[string]any, path string, create bool) []slot {
	t.Helper()
	steps := parsePath(t, path)
	parents := []any{obj}
	for i, st := range steps {
		var slots []slot
		for _, p := range parents {
			slots = append(slots, st.slots(t, path, p)...)
		}
		if len(slots) == 0 {
			t.Fatalf("path %s: %s matches nothing", path, st)
		}
		if i == len(steps)-1 {
			return slots
		}
		parents = nil
		for _, s := range slots {
			v, ok := s.get()
			if !ok {
				if !create {
					t.Fatalf("path %s: no %s", path, st)
				}
				v = map[string]any{}
				s.set(v)
			}
			parents = append(parents, v)
		}
	}
	t.Fatalf("empty path")
	return nil
}

// step is one step of a path: a field, an index, every element ("*") or a filter ("k=v").
type step struct {
	field, filterKey, filterValue string
	index                         int
	kind                          byte // 'f' field, 'i' index, '*' every element, '=' filter
}

func (st step) String() string {
	switch st.kind {
	case 'f':
		return st.field
	case 'i':
		return fmt.Sprintf("[%d]", st.index)
	case '*':
		return "[*]"
	}
	return "[" + st.filterKey + "=" + st.filterValue + "]"
}

func (st step) slots(t *testing.T, path string, parent any) []slot {
	t.Helper()
	if st.kind == 'f' {
		m, ok := parent.(map[string]any)
		if !ok {
			t.Fatalf("path %s: %s of something that is not a map", path, st)
		}
		return []slot{{m: m, key: st.field}}
	}
	list, ok := parent.([]any)
	if !ok {
		t.Fatalf("path %s: %s of something that is not a list", path, st)
	}
	var out []slot
	for i, el := range list {
		switch st.kind {
		case 'i':
			if i != st.index {
				continue
			}
		case '=':
			m, ok := el.(map[string]any)
			if !ok || fmt.Sprint(m[st.filterKey]) != st.filterValue {
				continue
			}
		}
		out = append(out, slot{list: list, i: i})
	}
	return out
}

func parsePath(t *testing.T, path string) []step {
	t.Helper()
	var steps []step
	for rest := path; rest != ""; {
		switch {
		case strings.HasPrefix(rest, "."):
			rest = rest[1:]
		case strings.HasPrefix(rest, "["):
			end := strings.Index(rest, "]")
			if end < 0 {
				t.Fatalf("path %s: unclosed [", path)
			}
			sel := rest[1:end]
			rest = rest[end+1:]
			if q, err := strconv.Unquote(sel); err == nil {
				steps = append(steps, step{kind: 'f', field: q})
			} else if sel == "*" {
				steps = append(steps, step{kind: '*'})
			} else if k, v, ok := strings.Cut(sel, "="); ok {
				steps = append(steps, step{kind: '=', filterKey: k, filterValue: v})
			} else if n, err := strconv.Atoi(sel); err == nil {
				steps = append(steps, step{kind: 'i', index: n})
			} else {
				t.Fatalf("path %s: bad selector [%s]", path, sel)
			}
		default:
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			steps = append(steps, step{kind: 'f', field: rest[:end]})
			rest = rest[end:]
		}
	}
	return steps
}

// replaceStrings replaces every string equal to from in v by to (in place for maps and lists)
// and counts the replacements.
func replaceStrings(v any, from, to string) (any, int) {
	switch x := v.(type) {
	case string:
		if x == from {
			return to, 1
		}
	case map[string]any:
		n := 0
		for k, e := range x {
			var c int
			x[k], c = replaceStrings(e, from, to)
			n += c
		}
		return x, n
	case []any:
		n := 0
		for i, e := range x {
			var c int
			x[i], c = replaceStrings(e, from, to)
			n += c
		}
		return x, n
	}
	return v, 0
}
