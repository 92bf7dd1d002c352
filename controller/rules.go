package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	rulesv1 "github.com/eddy-edge/eddy/controller/apis/rules/v1"
	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/pipeline/rules"
)

// KindRule is a KubeEdge Rule, shipped as its compiled route.
const KindRule = fleet.KindRule

// Rules have no status subresource (as in KubeEdge's CRD), so every
// counter write bumps metadata.generation: react to spec, annotation and
// deletion changes only, never to status writes.
var ruleSpecChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*rulesv1.Rule)
		n, ok2 := e.ObjectNew.(*rulesv1.Rule)
		if !ok1 || !ok2 {
			return true
		}
		return !equality.Semantic.DeepEqual(o.Spec, n.Spec) ||
			o.Annotations[rules.AnnotationNodeNames] != n.Annotations[rules.AnnotationNodeNames] ||
			o.Annotations[rules.AnnotationNodeSelector] != n.Annotations[rules.AnnotationNodeSelector] ||
			!n.DeletionTimestamp.Equal(o.DeletionTimestamp) ||
			!equality.Semantic.DeepEqual(o.Finalizers, n.Finalizers)
	},
}

func (c *Controller) setupRules() error {
	return ctrl.NewControllerManagedBy(c.mgr).
		Named("rule").
		For(&rulesv1.Rule{}, builder.WithPredicates(ruleSpecChanged)).
		Watches(&rulesv1.RuleEndpoint{}, handler.EnqueueRequestsFromMapFunc(c.rulesOfEndpoint)).
		// Rules sharing a rest path: who wins changes when one comes,
		// goes or moves.
		Watches(&rulesv1.Rule{}, handler.EnqueueRequestsFromMapFunc(c.rulesOnSamePath), builder.WithPredicates(pathChanged)).
		Watches(&eddyv1alpha1.EdgeNode{}, handler.EnqueueRequestsFromMapFunc(c.allRules),
			builder.WithPredicates(placementChanged)).
		// The edges' reports: a node that refused the route.
		WatchesRawSource(source.Channel(c.ruleEvents, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: c.opts.Workers}).
		Complete(reconcile.Func(c.reconcileRule))
}

func (c *Controller) rulesOfEndpoint(ctx context.Context, o client.Object) []reconcile.Request {
	var list rulesv1.RuleList
	if err := c.client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		c.opts.Logger.Error("list rules of an endpoint", "endpoint", o.GetNamespace()+"/"+o.GetName(), "err", err)
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		r := &list.Items[i]
		if r.Spec.Source == o.GetName() || r.Spec.Target == o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(r)})
		}
	}
	return out
}

// pathChanged passes Rule creations, deletions and changes of the rest
// source path.
var pathChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*rulesv1.Rule)
		n, ok2 := e.ObjectNew.(*rulesv1.Rule)
		return !ok1 || !ok2 || o.Spec.SourceResource["path"] != n.Spec.SourceResource["path"] ||
			!n.DeletionTimestamp.Equal(o.DeletionTimestamp)
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// rulesOnSamePath enqueues the other rules of the namespace with the same
// rest path.
func (c *Controller) rulesOnSamePath(ctx context.Context, o client.Object) []reconcile.Request {
	r, ok := o.(*rulesv1.Rule)
	if !ok || r.Spec.SourceResource["path"] == "" {
		return nil
	}
	var list rulesv1.RuleList
	if err := c.client.List(ctx, &list, client.InNamespace(r.Namespace)); err != nil {
		c.opts.Logger.Error("list rules", "err", err)
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		x := &list.Items[i]
		if x.Name != r.Name && x.Spec.SourceResource["path"] == r.Spec.SourceResource["path"] {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(x)})
		}
	}
	return out
}

// restConflict names the rule that routes route's rest path in its
// namespace instead of r: the first by name, as the router's table picks
// (KubeEdge's webhook refuses the second rule; a controller cannot refuse,
// so it reports).
func (c *Controller) restConflict(ctx context.Context, r *rulesv1.Rule, route *rules.Route) (string, error) {
	if route.Pair != rules.RestToEventBus && route.Pair != rules.RestToServiceBus {
		return "", nil
	}
	var list rulesv1.RuleList
	if err := c.client.List(ctx, &list, client.InNamespace(r.Namespace)); err != nil {
		return "", err
	}
	get := endpointGetter(c.client)
	for i := range list.Items {
		x := &list.Items[i]
		if x.Name >= r.Name || !x.DeletionTimestamp.IsZero() || x.Spec.SourceResource["path"] != route.Path {
			continue
		}
		src, err := get(ctx, x.Namespace, x.Spec.Source)
		if err != nil {
			return "", err
		}
		if src != nil && src.Spec.RuleEndpointType == rulesv1.EndpointRest {
			return x.Namespace + "/" + x.Name, nil
		}
	}
	return "", nil
}

func (c *Controller) allRules(ctx context.Context, _ client.Object) []reconcile.Request {
	var list rulesv1.RuleList
	if err := c.client.List(ctx, &list); err != nil {
		c.opts.Logger.Error("list rules", "err", err)
		return nil
	}
	out := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return out
}

// ToRule renders the resource as the document pipeline/rules reads (what
// `eddy validate` reads from a file).
func ToRule(r *rulesv1.Rule) *rules.Rule {
	return &rules.Rule{APIVersion: rules.APIVersion, Kind: "Rule",
		Metadata: devices.ObjectMeta{Name: r.Name, Namespace: r.Namespace, Labels: r.Labels, Annotations: r.Annotations},
		Spec: rules.RuleSpec{Source: r.Spec.Source, SourceResource: r.Spec.SourceResource,
			Target: r.Spec.Target, TargetResource: r.Spec.TargetResource}}
}

// ToRuleEndpoint renders the resource as pipeline/rules reads it.
func ToRuleEndpoint(e *rulesv1.RuleEndpoint) *rules.RuleEndpoint {
	return &rules.RuleEndpoint{APIVersion: rules.APIVersion, Kind: "RuleEndpoint",
		Metadata: devices.ObjectMeta{Name: e.Name, Namespace: e.Namespace, Labels: e.Labels, Annotations: e.Annotations},
		Spec:     rules.EndpointSpec{RuleEndpointType: rules.EndpointType(e.Spec.RuleEndpointType), Properties: e.Spec.Properties}}
}

// CompileRule compiles a Rule with its endpoints (read through get) using
// pipeline/rules.Compile, the code `eddy validate` runs. A missing
// endpoint is a compile error, not a failure of the call.
func CompileRule(ctx context.Context, get func(ctx context.Context, ns, name string) (*rulesv1.RuleEndpoint, error), r *rulesv1.Rule) (*rules.Route, error) {
	var src, dst *rules.RuleEndpoint
	for _, ep := range []struct {
		name string
		out  **rules.RuleEndpoint
	}{{r.Spec.Source, &src}, {r.Spec.Target, &dst}} {
		if ep.name == "" {
			continue
		}
		e, err := get(ctx, r.Namespace, ep.name)
		if err != nil {
			return nil, err
		}
		if e != nil {
			*ep.out = ToRuleEndpoint(e)
		}
	}
	route, err := rules.Compile(ToRule(r), src, dst)
	if err != nil {
		return nil, compileError{err}
	}
	return route, nil
}

// compileError marks an error of the Rule itself (not of the API server).
type compileError struct{ error }

func (e compileError) Unwrap() error { return e.error }

// endpointGetter reads RuleEndpoints through a client (nil, nil when
// missing).
func endpointGetter(cl client.Reader) func(ctx context.Context, ns, name string) (*rulesv1.RuleEndpoint, error) {
	return func(ctx context.Context, ns, name string) (*rulesv1.RuleEndpoint, error) {
		var e rulesv1.RuleEndpoint
		if err := cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &e); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, err
		}
		return &e, nil
	}
}

// rulePlacement is where a compiled Rule is placed: the nodes it names
// (sourceResource.node_name and the node-names annotation) plus the
// schedulable EdgeNodes its selector matches (the node-selector
// annotation; every EdgeNode for a rest source without annotations, as
// KubeEdge routes /{node}/... to any node). The reconciler ships the
// route to exactly these nodes, and the router talks to, and takes
// messages from, only these nodes.
type rulePlacement struct {
	names map[string]bool
	sel   labels.Selector // nil: the named nodes only
}

// placeRule reads a Rule's placement (see rulePlacement); a bad
// annotation is a compileError.
func placeRule(r *rulesv1.Rule, route *rules.Route) (rulePlacement, error) {
	p := rulePlacement{names: map[string]bool{}}
	names := rules.NodeNames(r.Annotations)
	for _, n := range names {
		if err := fleet.CheckName("node name", n); err != nil {
			return p, compileError{fmt.Errorf("metadata.annotations[%s]: %v", rules.AnnotationNodeNames, err)}
		}
		p.names[n] = true
	}
	if route.NodeName != "" {
		p.names[route.NodeName] = true
	}
	if s, ok := r.Annotations[rules.AnnotationNodeSelector]; ok {
		sel, err := labels.Parse(s)
		if err != nil {
			return p, compileError{fmt.Errorf("metadata.annotations[%s]: %q is not a label selector: %v (e.g. site=plant-1,tier in (a,b))", rules.AnnotationNodeSelector, s, err)}
		}
		p.sel = sel
	} else if route.Pair != rules.EventBusToRest && len(p.names) == 0 {
		p.sel = labels.Everything()
	}
	return p, nil
}

// has reports whether node is one of the placement's nodes. schedulable
// says whether node is an EdgeNode that takes placements (it exists, is
// not being deleted, is not unschedulable), with nodeLabels its labels.
func (p rulePlacement) has(node string, schedulable bool, nodeLabels labels.Set) bool {
	return p.names[node] || (p.sel != nil && schedulable && p.sel.Matches(nodeLabels))
}

// String says where the rule is placed, for error messages.
func (p rulePlacement) String() string {
	var parts []string
	if len(p.names) > 0 {
		names := make([]string, 0, len(p.names))
		for n := range p.names {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) > 5 {
			names = append(names[:5:5], fmt.Sprintf("%d more", len(names)-5))
		}
		parts = append(parts, "nodes "+strings.Join(names, ", "))
	}
	switch {
	case p.sel == nil:
	case p.sel.Empty():
		parts = append(parts, "every EdgeNode")
	default:
		parts = append(parts, "the EdgeNodes matching "+p.sel.String())
	}
	if len(parts) == 0 {
		return "no node"
	}
	return strings.Join(parts, " and ")
}

// schedulable reports whether an EdgeNode takes placements.
func schedulable(n *eddyv1alpha1.EdgeNode) bool {
	return !n.Spec.Unschedulable && n.DeletionTimestamp.IsZero()
}

// ruleNodes returns the nodes a Rule is placed on (rulePlacement) from
// the EdgeNodes in the cache.
func (c *Controller) ruleNodes(ctx context.Context, r *rulesv1.Rule, route *rules.Route) ([]string, error) {
	p, err := placeRule(r, route)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(p.names))
	for n := range p.names {
		names = append(names, n)
	}
	return c.selectNodes(ctx, p.sel, names)
}

func (c *Controller) reconcileRule(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	c.reconciles.Add(1)
	key := objKey{KindRule, req.Namespace, req.Name}
	var r rulesv1.Rule
	if err := c.client.Get(ctx, req.NamespacedName, &r); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !r.DeletionTimestamp.IsZero() {
		if err := c.removeEverywhere(ctx, key); err != nil {
			return reconcile.Result{}, err
		}
		if err := c.setFinalizer(ctx, &r, false); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		c.opts.Logger.Info("rule deleted; routes removed from its nodes", "rule", req.String())
		return reconcile.Result{}, nil
	}
	if err := c.setFinalizer(ctx, &r, true); err != nil {
		return reconcile.Result{}, err
	}
	route, err := CompileRule(ctx, endpointGetter(c.client), &r)
	var nodes []string
	if err == nil {
		nodes, err = c.ruleNodes(ctx, &r, route)
	}
	var ce compileError
	if errors.As(err, &ce) {
		// Nothing is shipped: nodes keep the last good route.
		return reconcile.Result{}, c.ruleError(ctx, &r, "not routed: "+ce.Error())
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	doc, err := json.Marshal(route)
	if err != nil {
		return reconcile.Result{}, err
	}
	hash, err := objectHash(doc)
	if err != nil {
		return reconcile.Result{}, err
	}
	obj := Object{Kind: KindRule, Namespace: r.Namespace, Name: r.Name, Version: r.Generation, Hash: hash, Resource: doc}
	failed, err := c.shipByHash(ctx, key, obj, nodes)
	if err != nil {
		return reconcile.Result{}, err
	}
	for n, err := range failed {
		_ = c.ruleError(ctx, &r, fmt.Sprintf("writing the route for node %s: %v", n, err))
		return reconcile.Result{RequeueAfter: retryAfter}, nil
	}
	c.opts.Logger.Debug("rule routed", "rule", req.String(), "pair", route.Pair, "nodes", len(nodes), "hash", hash)
	winner, err := c.restConflict(ctx, &r, route)
	if err != nil {
		return reconcile.Result{}, err
	}
	if winner != "" {
		return reconcile.Result{}, c.ruleError(ctx, &r, fmt.Sprintf("not routed: spec.sourceResource.path: %s is already routed by rule %s (the first by name wins); give this rule another path", route.Path, winner))
	}
	// A node that refused this version of the route (e.g. an older Eddy
	// that does not know Rules) says why in its report.
	var refused []string
	for _, n := range nodes {
		if rep, ok := c.track.reportsFor(key)[n]; ok && rep.Failed {
			refused = append(refused, n+": "+rep.Error)
		}
	}
	if len(refused) > 0 {
		sort.Strings(refused)
		return reconcile.Result{}, c.ruleError(ctx, &r, "not routed: refused by node "+firstFew(refused))
	}
	return reconcile.Result{}, c.clearRuleError(ctx, &r)
}

// ruleErrorPrefixes mark the errors the reconciler writes (compile and
// shipping problems), so that it can take them back once fixed; delivery
// errors come from the router.
var ruleErrorPrefixes = []string{"not routed: ", "writing the route for node "}

func isReconcileError(s string) bool {
	for _, p := range ruleErrorPrefixes {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}

// ruleError makes msg the Rule's newest error (KubeEdge keeps errors in
// status.errors), dropping older reconcile errors.
func (c *Controller) ruleError(ctx context.Context, r *rulesv1.Rule, msg string) error {
	errs := slices.DeleteFunc(slices.Clone(r.Status.Errors), isReconcileError)
	errs = appendErrors(errs, msg)
	if slices.Equal(errs, r.Status.Errors) {
		return nil
	}
	return c.patchRuleErrors(ctx, r, errs)
}

// clearRuleError drops the reconciler's errors once the rule routes.
func (c *Controller) clearRuleError(ctx context.Context, r *rulesv1.Rule) error {
	errs := slices.DeleteFunc(slices.Clone(r.Status.Errors), isReconcileError)
	if len(errs) == len(r.Status.Errors) {
		return nil
	}
	return c.patchRuleErrors(ctx, r, errs)
}

func (c *Controller) patchRuleErrors(ctx context.Context, r *rulesv1.Rule, errs []string) error {
	base := r.DeepCopy()
	r.Status.Errors = errs
	if err := c.client.Patch(ctx, r, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("write status of rule %s/%s: %w", r.Namespace, r.Name, err)
	}
	c.statusWrites.Add(1)
	return nil
}

// maxRuleErrors is how many errors a Rule's status keeps (newest last).
const maxRuleErrors = 5

func appendErrors(errs []string, more ...string) []string {
	for _, m := range more {
		if len(m) > 512 {
			m = m[:509] + "..."
		}
		errs = append(errs, m)
	}
	if len(errs) > maxRuleErrors {
		errs = errs[len(errs)-maxRuleErrors:]
	}
	return errs
}
