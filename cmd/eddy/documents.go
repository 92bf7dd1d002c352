package main

// Document loading for `eddy run` and `eddy validate`: like `kubectl apply
// -f`, they take files and directories holding any mix of the kinds Eddy
// knows, each validated by its own package with file:line errors.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/pipeline/rules"
	"github.com/eddy-edge/eddy/pipeline/strictyaml"
	"gopkg.in/yaml.v3"
)

// documentKind is one kind of YAML document Eddy reads.
type documentKind struct {
	// Group is the API group of its apiVersion (group/version).
	Group string
	// Kind is the document's kind.
	Kind string
	// Versions are the accepted versions, for messages.
	Versions []string
	// Load decodes and checks one document into set; every problem is
	// returned with file:line. Nil accepts the kind and ignores it.
	Load func(set *documentSet, doc *strictyaml.Document, src []byte) strictyaml.Errors
}

// documentKinds are the kinds `eddy run` and `eddy validate` read. Adding
// a kind is one entry here (and a field in documentSet for what it loads).
var documentKinds = []documentKind{
	{Group: "eddy.dev", Kind: pipeline.Kind, Versions: []string{"v1alpha1"}, Load: loadPipelineDoc},
	{Group: devices.Group, Kind: "Device", Versions: []string{"v1beta1", "v1alpha2"}, Load: loadDeviceDoc},
	{Group: devices.Group, Kind: "DeviceModel", Versions: []string{"v1beta1", "v1alpha2"}, Load: loadDeviceDoc},
	// Written by KubeEdge v1.23+ next to each Device; no configuration.
	{Group: devices.Group, Kind: "DeviceStatus", Versions: []string{"v1beta1"}},
	// KubeEdge's router: checked here, routed by eddy-controller.
	{Group: rules.Group, Kind: "Rule", Versions: []string{"v1"}, Load: loadRuleDoc},
	{Group: rules.Group, Kind: "RuleEndpoint", Versions: []string{"v1"}, Load: loadRuleDoc},
	{Group: "eddy.dev", Kind: "EdgeNode", Versions: []string{"v1alpha1"}, Load: loadEdgeNodeDoc},
}

// documentSet is what a set of files declares.
type documentSet struct {
	// Pipelines are the compiled Pipeline documents, in file order.
	Pipelines []loadedPlan
	// Devices are the Device documents, resolved against Models across all
	// files once every file is read.
	Devices []devices.Device
	// Models are the DeviceModel documents.
	Models []devices.Model
	// Rules are the Rule documents, compiled against Endpoints across all
	// files once every file is read.
	Rules []loadedRule
	// Endpoints are the RuleEndpoint documents.
	Endpoints []rules.RuleEndpoint
	// EdgeNodes are the names of the EdgeNode documents.
	EdgeNodes []string
}

// loadedRule is a Rule document, with its route once compiled.
type loadedRule struct {
	Rule  *rules.Rule
	Doc   *strictyaml.Document
	Route *rules.Route
}

func loadRuleDoc(set *documentSet, doc *strictyaml.Document, _ []byte) strictyaml.Errors {
	r, e, errs := rules.LoadDocument(doc)
	if r != nil {
		set.Rules = append(set.Rules, loadedRule{Rule: r, Doc: doc})
	}
	if e != nil {
		set.Endpoints = append(set.Endpoints, *e)
	}
	return errs
}

// edgeNodeDoc is an eddy.dev/v1alpha1 EdgeNode as `kubectl get -o yaml`
// writes it: users set labels and spec.unschedulable; the controller
// writes status.
type edgeNodeDoc struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   devices.ObjectMeta `json:"metadata"`
	Spec       struct {
		// Unschedulable keeps new placements off the node.
		Unschedulable bool `json:"unschedulable,omitempty"`
	} `json:"spec"`
	// Status is written by the controller and ignored.
	Status map[string]any `json:"status,omitempty"`
}

func loadEdgeNodeDoc(set *documentSet, doc *strictyaml.Document, _ []byte) strictyaml.Errors {
	if v, _ := doc.Kind(); v != "eddy.dev/v1alpha1" {
		return strictyaml.Errors{keyError(doc, "apiVersion", "unsupported version %q; use eddy.dev/v1alpha1", v)}
	}
	var n edgeNodeDoc
	if errs := doc.Decode(&n); len(errs) > 0 {
		return errs
	}
	if err := fleet.CheckName("name", n.Metadata.Name); err != nil {
		return strictyaml.Errors{doc.At("metadata.name", "%v; an EdgeNode is named after its edge's node setting", err)}
	}
	if n.Metadata.Namespace != "" {
		return strictyaml.Errors{doc.At("metadata.namespace", "EdgeNodes are cluster-scoped; drop the namespace")}
	}
	set.EdgeNodes = append(set.EdgeNodes, n.Metadata.Name)
	return nil
}

// resolveRules compiles every Rule against the RuleEndpoints of all files
// (as the controller does against the cluster's) and refuses two rules of
// a namespace with the same source, as KubeEdge's admission webhook does.
func resolveRules(set *documentSet) strictyaml.Errors {
	var errs strictyaml.Errors
	for i := range set.Rules {
		lr := &set.Rules[i]
		find := func(name string) *rules.RuleEndpoint {
			for j := range set.Endpoints {
				e := &set.Endpoints[j]
				if e.Metadata.Name == name && e.Metadata.Namespace == lr.Rule.Metadata.Namespace {
					return e
				}
			}
			return nil
		}
		route, err := rules.Compile(lr.Rule, find(lr.Rule.Spec.Source), find(lr.Rule.Spec.Target))
		if err != nil {
			errs = append(errs, rules.DocumentErrors(lr.Doc, err)...)
			continue
		}
		for _, prev := range set.Rules[:i] {
			if prev.Route != nil && prev.Route.ID() == route.ID() {
				errs = append(errs, lr.Doc.At("metadata.name", "rule %s is declared twice (first in %s); rename one or drop it", route.ID(), prev.Doc.File))
				route = nil
				break
			}
			if prev.Route != nil {
				if err := rules.Conflict(route, prev.Route); err != nil {
					path, msg, _ := strings.Cut(err.Error(), ": ")
					errs = append(errs, lr.Doc.At(path, "%s", msg))
				}
			}
		}
		lr.Route = route
	}
	return errs
}

// loadedPlan is a compiled pipeline and the file it came from.
type loadedPlan struct {
	Plan *pipeline.Plan
	File string
	Src  []byte
	Pos  strictyaml.Pos // of metadata.name
}

func loadPipelineDoc(set *documentSet, doc *strictyaml.Document, src []byte) strictyaml.Errors {
	plan, errs := pipeline.LoadDocument(doc)
	if plan != nil {
		set.Pipelines = append(set.Pipelines, loadedPlan{Plan: plan, File: doc.File, Src: src, Pos: doc.PosOf("metadata.name")})
	}
	return errs
}

func loadDeviceDoc(set *documentSet, doc *strictyaml.Document, _ []byte) strictyaml.Errors {
	d, m, errs := devices.LoadDocument(doc)
	if d != nil {
		set.Devices = append(set.Devices, *d)
	}
	if m != nil {
		set.Models = append(set.Models, *m)
	}
	return errs
}

// knownKinds lists the kinds for an error message.
func knownKinds() string {
	var s []string
	for _, k := range documentKinds {
		if k.Load == nil {
			continue
		}
		s = append(s, fmt.Sprintf("%s (%s/%s)", k.Kind, k.Group, strings.Join(k.Versions, ", ")))
	}
	return strings.Join(s, ", ")
}

// expandPaths turns files and directories into the files to read: a
// directory contributes its *.yaml, *.yml and *.json files (not its
// subdirectories), in name order, as `kubectl apply -f DIR` does.
func expandPaths(paths []string) ([]string, error) {
	var files []string
	var errs []error
	seen := map[string]bool{}
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, errors.Unwrap(err)))
			continue
		}
		if !info.IsDir() {
			add(p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := 0
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if e.Type()&fs.ModeType == 0 && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
				add(filepath.Join(p, e.Name()))
				n++
			}
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("%s: directory has no .yaml, .yml or .json files", p))
		}
	}
	return files, errors.Join(errs...)
}

// loadDocuments reads every document of the files and directories, checks
// each by its kind, and resolves devices against models across all files.
// All problems are returned together (strictyaml errors carry file:line).
func loadDocuments(paths []string) (*documentSet, error) {
	files, err := expandPaths(paths)
	if err != nil {
		return nil, err
	}
	set := &documentSet{}
	var errs strictyaml.Errors
	var other []error
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			other = append(other, err)
			continue
		}
		docs, serrs := strictyaml.Split(f, src)
		errs = append(errs, serrs...)
		for _, doc := range docs {
			errs = append(errs, loadDocument(set, doc, src)...)
		}
	}
	seen := map[string]strictyaml.Pos{}
	for _, p := range set.Pipelines {
		if first, dup := seen[p.Plan.ID()]; dup {
			errs = append(errs, strictyaml.Error{Pos: p.Pos, Path: "metadata.name",
				Msg: fmt.Sprintf("pipeline %s is declared twice (first at %s:%d); rename one or drop it", p.Plan.ID(), first.File, first.Line)})
			continue
		}
		seen[p.Plan.ID()] = p.Pos
	}
	if len(errs) == 0 && len(other) == 0 {
		other = append(other, checkCycles(set.Pipelines)...)
	}
	if len(errs) == 0 && len(other) == 0 {
		errs = append(errs, resolveRules(set)...)
	}
	if len(errs) == 0 && len(other) == 0 {
		resolved, err := devices.Resolve(set.Devices, set.Models)
		if err != nil {
			return nil, err
		}
		set.Devices = resolved
	}
	if len(other) > 0 {
		if len(errs) > 0 {
			other = append(other, errs)
		}
		return nil, errors.Join(other...)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// checkCycles refuses pipelines whose sinks feed each other in a cycle,
// which only shows across documents and files.
func checkCycles(loaded []loadedPlan) []error {
	plans := make([]*pipeline.Plan, len(loaded))
	for i, l := range loaded {
		plans[i] = l.Plan
	}
	var errs []error
	if cyc := pipeline.FindCycle(plans); cyc != nil {
		errs = append(errs, fmt.Errorf("these pipelines feed each other in a loop: %s; every output would come back as input. Publish to topics no pipeline of the loop reads, or set allowLoop: true on a sink of the loop if a step ends it",
			strings.Join(cyc, " ")))
	}
	return errs
}

// loadDocument dispatches one document to its kind's loader.
func loadDocument(set *documentSet, doc *strictyaml.Document, src []byte) strictyaml.Errors {
	apiVersion, kind := doc.Kind()
	group, _, _ := strings.Cut(apiVersion, "/")
	if kind == "" {
		return strictyaml.Errors{keyError(doc, "kind", "document has no kind; Eddy reads %s", knownKinds())}
	}
	var sameKind *documentKind
	for i := range documentKinds {
		k := &documentKinds[i]
		if k.Kind != kind {
			continue
		}
		if k.Group == group {
			if k.Load == nil {
				return nil
			}
			return k.Load(set, doc, src)
		}
		sameKind = k
	}
	if sameKind != nil {
		// A known kind under another group: let its loader say which
		// apiVersion it wants (e.g. a Pipeline without apiVersion).
		if sameKind.Load == nil {
			return nil
		}
		return sameKind.Load(set, doc, src)
	}
	what := fmt.Sprintf("%q", kind)
	if apiVersion != "" {
		what += " (" + apiVersion + ")"
	}
	return strictyaml.Errors{keyError(doc, "kind", "unknown kind %s; Eddy reads %s", what, knownKinds())}
}

// keyError is an error at a top-level key of a document not decoded yet.
func keyError(doc *strictyaml.Document, key, format string, args ...any) strictyaml.Error {
	e := strictyaml.Error{Pos: strictyaml.Pos{File: doc.File, Line: doc.Root.Line, Col: doc.Root.Column}, Path: key, Msg: fmt.Sprintf(format, args...)}
	if doc.Root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(doc.Root.Content); i += 2 {
			if doc.Root.Content[i].Value == key {
				n := doc.Root.Content[i+1]
				e.Line, e.Col = n.Line, n.Column
			}
		}
	}
	return e
}

// devicesElsewhere returns the devices whose nodeName names another node.
func devicesElsewhere(devs []devices.Device, node string) []devices.Device {
	var out []devices.Device
	for _, d := range devs {
		if d.NodeName != "" && d.NodeName != node {
			out = append(out, d)
		}
	}
	return out
}

// describeDevice is the one-line summary eddy validate prints.
func describeDevice(d *devices.Device) string {
	var where string
	switch mb := d.Protocol.Modbus; {
	case mb != nil && mb.TCP != nil:
		where = fmt.Sprintf(", modbus tcp %s unit %d", mb.TCP.Addr, mb.SlaveID)
	case mb != nil && mb.RTU != nil:
		where = fmt.Sprintf(", modbus rtu %s unit %d", mb.RTU.Port, mb.SlaveID)
	case d.Protocol.Name != "":
		where = ", protocol " + d.Protocol.Name + " (twin only)"
	}
	node := ""
	if d.NodeName != "" {
		node = ", node " + d.NodeName
	}
	return fmt.Sprintf("device %s ok (model %s, %s%s%s)", d.ID(), d.Model, plural(len(d.Properties), "property", "properties"), where, node)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
