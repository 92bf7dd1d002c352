package rules

import (
	"fmt"

	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

// LoadDocument strictly decodes one Rule or RuleEndpoint document (as
// `kubectl get -o yaml` writes it, too) and checks what can be checked
// without the other documents: a RuleEndpoint completely, a Rule's
// required fields. Compile checks a Rule against its endpoints.
func LoadDocument(doc *strictyaml.Document) (*Rule, *RuleEndpoint, strictyaml.Errors) {
	apiVersion, kind := doc.Kind()
	if apiVersion != APIVersion {
		return nil, nil, strictyaml.Errors{doc.At("apiVersion", "unsupported version %q; use %s", apiVersion, APIVersion)}
	}
	switch kind {
	case "Rule":
		var r Rule
		if errs := doc.Decode(&r); len(errs) > 0 {
			return nil, nil, errs
		}
		var errs strictyaml.Errors
		if r.Metadata.Name == "" {
			errs = append(errs, doc.At("metadata.name", "missing name; every Rule needs metadata.name"))
		}
		if r.Spec.Source == "" {
			errs = append(errs, doc.At("spec.source", "required: name the source RuleEndpoint"))
		}
		if r.Spec.Target == "" {
			errs = append(errs, doc.At("spec.target", "required: name the target RuleEndpoint"))
		}
		if len(errs) > 0 {
			return nil, nil, errs
		}
		if r.Metadata.Namespace == "" {
			r.Metadata.Namespace = "default"
		}
		return &r, nil, nil
	case "RuleEndpoint":
		var e RuleEndpoint
		if errs := doc.Decode(&e); len(errs) > 0 {
			return nil, nil, errs
		}
		if e.Metadata.Name == "" {
			return nil, nil, strictyaml.Errors{doc.At("metadata.name", "missing name; every RuleEndpoint needs metadata.name")}
		}
		if err := CheckEndpoint(&e); err != nil {
			fe := err.(FieldError)
			return nil, nil, strictyaml.Errors{doc.At(fe.Path, "%s", fe.Msg)}
		}
		if e.Metadata.Namespace == "" {
			e.Metadata.Namespace = "default"
		}
		return nil, &e, nil
	}
	return nil, nil, strictyaml.Errors{doc.At("kind", "unsupported kind %q in %s; use Rule or RuleEndpoint", kind, apiVersion)}
}

// DocumentErrors places Compile's errors on a Rule's document.
func DocumentErrors(doc *strictyaml.Document, err error) strictyaml.Errors {
	if err == nil {
		return nil
	}
	fes, ok := err.(FieldErrors)
	if !ok {
		return strictyaml.Errors{doc.At("", "%v", err)}
	}
	out := make(strictyaml.Errors, len(fes))
	for i, fe := range fes {
		out[i] = doc.At(fe.Path, "%s", fe.Msg)
	}
	return out
}

// Conflict returns an error when two routes of one namespace claim the same
// source (KubeEdge's admission webhook refuses them): the same rest path,
// or the same eventbus topic on the same node.
func Conflict(a, b *Route) error {
	if a.Namespace != b.Namespace {
		return nil
	}
	aRest := a.Pair == RestToEventBus || a.Pair == RestToServiceBus
	bRest := b.Pair == RestToEventBus || b.Pair == RestToServiceBus
	switch {
	case aRest && bRest && a.Path == b.Path:
		return fmt.Errorf("spec.sourceResource.path: %s is already routed by rule %s; one path routes to one target", a.Path, b.ID())
	case a.Pair == EventBusToRest && b.Pair == EventBusToRest && a.Topic == b.Topic && a.NodeName == b.NodeName && a.NodeName != "":
		return fmt.Errorf("spec.sourceResource.topic: %s on node %s is already routed by rule %s", a.Topic, a.NodeName, b.ID())
	}
	return nil
}
