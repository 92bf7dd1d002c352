package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/pipeline/rules"
	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

// Object is one resource read from YAML, checked and ready to ship: an
// eddy.dev Pipeline or a KubeEdge Device or DeviceModel.
type Object struct {
	// Kind, Namespace and Name identify it.
	Kind      Kind
	Namespace string
	Name      string
	// Generation is metadata.generation (0 when not written).
	Generation int64
	// Hash is the plan hash (pipelines) or ObjectHash (devices, models).
	Hash string
	// NodeSelector is a pipeline's spec.nodeSelector (nil otherwise).
	NodeSelector *pipeline.LabelSelector
	// NodeName is a device's node (spec.nodeName), "" otherwise.
	NodeName string
	// JSON is the resource as JSON, as it is stored in the envelope.
	JSON json.RawMessage
	// Source is file:line of the document.
	Source string
}

// ID returns namespace/name.
func (o Object) ID() string { return o.Namespace + "/" + o.Name }

// Envelope returns the envelope that ships o to node.
func (o Object) Envelope(node, writer string, now time.Time) *Envelope {
	return &Envelope{Format: EnvelopeFormat, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Node: node,
		Generation: o.Generation, Hash: o.Hash, Object: o.JSON, Writer: writer, UpdatedAt: now.UTC()}
}

// kindError is an error at the document's kind (file:line).
func kindError(doc *strictyaml.Document, format string, args ...any) strictyaml.Error {
	pos := strictyaml.Pos{File: doc.File, Line: doc.Root.Line, Col: doc.Root.Column}
	for i := 0; i+1 < len(doc.Root.Content); i += 2 {
		if k := doc.Root.Content[i]; k.Value == "kind" {
			pos.Line, pos.Col = k.Line, k.Column
		}
	}
	return strictyaml.Error{Pos: pos, Path: "kind", Msg: fmt.Sprintf(format, args...)}
}

// fileKinds renders FileKinds with their API groups.
func fileKinds() string {
	var s []string
	for _, k := range FileKinds() {
		s = append(s, k.Group()+" "+string(k))
	}
	return strings.Join(s, ", ")
}

// LoadPaths reads every object of FileKinds (Pipeline, Device and
// DeviceModel; Rules need the controller) in the given files
// and directories (a directory contributes its *.yaml and *.yml files, not
// recursively). Everything is checked as the edge will check it (pipelines
// compiled, devices joined to their models across all files), and every
// problem is reported with file:line. Two objects of the same kind and
// namespace/name are an error.
func LoadPaths(paths []string) ([]Object, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		for _, pat := range []string{"*.yaml", "*.yml"} {
			m, _ := filepath.Glob(filepath.Join(p, pat))
			found = append(found, m...)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no *.yaml or *.yml files in this directory", p)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	var objs []Object
	var errs []error
	var devs []devices.Device
	var models []devices.Model
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o, d, m, err := load(f, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs, devs, models = append(objs, o...), append(devs, d...), append(models, m...)
	}
	if len(errs) == 0 && len(devs) > 0 {
		if _, err := devices.Resolve(devs, models); err != nil {
			errs = append(errs, err)
		}
	}
	seen := map[string]string{}
	for _, o := range objs {
		id := string(o.Kind) + " " + o.ID()
		if prev, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("%s: %s is also defined at %s", o.Source, id, prev))
		}
		seen[id] = o.Source
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("%s: no %s documents found", strings.Join(paths, ", "), KindList(FileKinds()))
	}
	return objs, nil
}

// Load reads the objects of one YAML file (see LoadPaths). Devices are
// checked on their own; use LoadPaths to also join them to their models.
func Load(file string, src []byte) ([]Object, error) {
	objs, _, _, err := load(file, src)
	return objs, err
}

func load(file string, src []byte) ([]Object, []devices.Device, []devices.Model, error) {
	docs, errs := strictyaml.Split(file, src)
	if err := errs.Err(); err != nil {
		return nil, nil, nil, err
	}
	devs, models, err := devices.Load(file, src)
	if err != nil {
		return nil, nil, nil, err
	}
	devNode := map[string]string{}
	for _, d := range devs {
		devNode[d.ID()] = d.NodeName
	}
	var objs []Object
	for _, doc := range docs {
		apiVersion, kind := doc.Kind()
		group, _, _ := strings.Cut(apiVersion, "/")
		pos := doc.PosOf("")
		if pos.Line == 0 {
			pos.Line = doc.Root.Line
		}
		o := Object{Source: fmt.Sprintf("%s:%d", file, pos.Line)}
		switch {
		case kind == pipeline.Kind || group == "eddy.dev":
			p, derrs := pipeline.Decode(doc)
			plan, cerrs := pipeline.CompileDoc(p, doc)
			errs = append(errs, derrs...)
			errs = append(errs, cerrs...)
			if len(derrs) > 0 || len(cerrs) > 0 {
				continue
			}
			o.Kind, o.Namespace, o.Name, o.Generation, o.Hash = KindPipeline, plan.Namespace, plan.Name, p.Metadata.Generation, plan.Hash
			o.NodeSelector = p.Spec.NodeSelector
		case group == devices.Group && (kind == "Device" || kind == "DeviceModel"):
			o.Kind = Kind(kind)
		case group == devices.Group && kind == "DeviceStatus":
			continue
		case Kind(kind).CloudOnly() != "" && group == Kind(kind).Group():
			errs = append(errs, kindError(doc, "%s %q cannot be shipped with eddy fleet: %s; apply it with kubectl to a cluster running `eddy controller --router-addr :9443` (docs/controller.md); eddy validate checks it", apiVersion, kind, Kind(kind).CloudOnly()))
			continue
		case group == rules.Group && kind == "RuleEndpoint":
			errs = append(errs, kindError(doc, "%s %q cannot be shipped with eddy fleet: %s; apply it with its Rules using kubectl to a cluster running `eddy controller --router-addr :9443` (docs/controller.md); eddy validate checks it", apiVersion, kind, KindRule.CloudOnly()))
			continue
		default:
			errs = append(errs, kindError(doc, "%s %q cannot be shipped to an edge; eddy fleet ships %s", apiVersion, kind, fileKinds()))
			continue
		}
		var v any
		if err := doc.Root.Decode(&v); err != nil {
			errs = append(errs, doc.At("", "cannot convert to JSON: %v", err))
			continue
		}
		b, err := json.Marshal(v) // map keys sorted: canonical
		if err != nil {
			errs = append(errs, doc.At("", "cannot convert to JSON: %v", err))
			continue
		}
		o.JSON = b
		if o.Kind != KindPipeline {
			meta, _ := v.(map[string]any)["metadata"].(map[string]any)
			o.Name, _ = meta["name"].(string)
			o.Namespace, _ = meta["namespace"].(string)
			if o.Namespace == "" {
				o.Namespace = "default"
			}
			if g, ok := meta["generation"].(int); ok {
				o.Generation = int64(g)
			}
			o.Hash = ObjectHash(b)
			if o.Kind == KindDevice {
				o.NodeName = devNode[o.ID()]
			}
		}
		objs = append(objs, o)
	}
	if err := errs.Err(); err != nil {
		return nil, nil, nil, err
	}
	return objs, devs, models, nil
}
