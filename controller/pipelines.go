package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"sigs.k8s.io/controller-runtime/pkg/controller"

	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	"github.com/eddy-edge/eddy/pipeline"
)

// retryAfter is when a reconcile whose plan writes partly failed runs again.
const retryAfter = 2 * time.Second

// Finalizer is put on every shipped object so that its plans are removed
// from the nodes before Kubernetes forgets it (even if the controller was
// down when it was deleted).
const Finalizer = "eddy.dev/plans"

func (c *Controller) setupPipelines() error {
	return ctrl.NewControllerManagedBy(c.mgr).
		Named("pipeline").
		For(&eddyv1alpha1.Pipeline{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		// Any change of the node set (registration, labels, deletion,
		// Ready) may change placements: re-run every pipeline (the work
		// queue folds repeats of one key).
		Watches(&eddyv1alpha1.EdgeNode{}, handler.EnqueueRequestsFromMapFunc(c.allPipelines),
			builder.WithPredicates(placementChanged)).
		WatchesRawSource(source.Channel(c.pipelineEvents, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: c.opts.Workers}).
		Complete(reconcile.Func(c.reconcilePipeline))
}

// placementChanged passes EdgeNode events that can change where pipelines
// run or whether they count as running: creation, deletion, labels,
// unschedulable, Ready. Heartbeat refreshes do not pass.
var placementChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*eddyv1alpha1.EdgeNode)
		n, ok2 := e.ObjectNew.(*eddyv1alpha1.EdgeNode)
		if !ok1 || !ok2 {
			return true
		}
		return !labels.Equals(o.Labels, n.Labels) || o.Spec != n.Spec ||
			meta.IsStatusConditionTrue(o.Status.Conditions, string(eddyv1alpha1.Ready)) !=
				meta.IsStatusConditionTrue(n.Status.Conditions, string(eddyv1alpha1.Ready)) ||
			!n.DeletionTimestamp.Equal(o.DeletionTimestamp)
	},
}

func (c *Controller) allPipelines(ctx context.Context, _ client.Object) []reconcile.Request {
	var list eddyv1alpha1.PipelineList
	if err := c.client.List(ctx, &list); err != nil {
		c.opts.Logger.Error("list pipelines", "err", err)
		return nil
	}
	out := make([]reconcile.Request, len(list.Items))
	for i, p := range list.Items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)}
	}
	return out
}

// ToPipeline turns the resource into the document the edge compiles (and
// `eddy validate` reads): the same spec, its name and generation.
func ToPipeline(p *eddyv1alpha1.Pipeline) *pipeline.Pipeline {
	return &pipeline.Pipeline{
		APIVersion: pipeline.APIVersion,
		Kind:       pipeline.Kind,
		Metadata: pipeline.ObjectMeta{
			Name:        p.Name,
			Namespace:   p.Namespace,
			Labels:      p.Labels,
			Generation:  p.Generation,
			UID:         string(p.UID),
			Annotations: nil,
		},
		Spec: p.Spec.Spec,
	}
}

func (c *Controller) reconcilePipeline(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	c.reconciles.Add(1)
	log := c.opts.Logger.With("pipeline", req.String())
	key := objKey{KindPipeline, req.Namespace, req.Name}
	var p eddyv1alpha1.Pipeline
	if err := c.client.Get(ctx, req.NamespacedName, &p); err != nil {
		if apierrors.IsNotFound(err) {
			c.track.forget(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !p.DeletionTimestamp.IsZero() {
		if err := c.removeEverywhere(ctx, key); err != nil {
			return reconcile.Result{}, err
		}
		c.track.forget(key)
		if err := c.setFinalizer(ctx, &p, false); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		log.Info("pipeline deleted; plans removed from its nodes")
		return reconcile.Result{}, nil
	}
	if err := c.setFinalizer(ctx, &p, true); err != nil {
		return reconcile.Result{}, err
	}

	old := p.Status.DeepCopy()
	st := &p.Status
	st.ObservedGeneration = p.Generation

	plan, err := pipeline.Compile(ToPipeline(&p))
	var sel labels.Selector
	if err == nil {
		sel, err = selector(p.Spec.NodeSelector)
	}
	if err != nil {
		// Nothing is shipped: the nodes keep the last good version.
		c.setCond(&st.Conditions, p.Generation, eddyv1alpha1.Compiled, false, "CompileError", err.Error())
		c.setCond(&st.Conditions, p.Generation, eddyv1alpha1.Delivered, false, "CompileError",
			"not delivered: the spec does not compile; nodes keep running their last good version")
		c.setCond(&st.Conditions, p.Generation, eddyv1alpha1.Running, false, "CompileError",
			"generation "+fmt.Sprint(p.Generation)+" does not compile")
		return reconcile.Result{}, c.writeStatus(ctx, &p, old)
	}
	c.setCond(&st.Conditions, p.Generation, eddyv1alpha1.Compiled, true, "Compiled", "plan "+plan.Hash)
	st.Hash = plan.Hash

	nodes, err := c.selectNodes(ctx, sel, p.Spec.NodeNames)
	if err != nil {
		return reconcile.Result{}, err
	}
	body, err := json.Marshal(ToPipeline(&p))
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("encode pipeline %s: %w", req, err)
	}
	obj := Object{Kind: KindPipeline, Namespace: p.Namespace, Name: p.Name, Version: p.Generation, Hash: plan.Hash, Resource: body}
	failed, err := c.ship(ctx, key, obj, nodes)
	if err != nil {
		return reconcile.Result{}, err
	}
	c.pipelineStatus(st, key, p.Generation, nodes, failed)
	if err := c.writeStatus(ctx, &p, old); err != nil {
		return reconcile.Result{}, err
	}
	if len(failed) > 0 {
		// Some plans were not written (the hub was busy or away): try
		// those nodes again; the diff writes only what is still missing.
		return reconcile.Result{RequeueAfter: retryAfter}, nil
	}
	return reconcile.Result{}, nil
}

// setFinalizer adds or removes Finalizer with a merge patch of
// metadata.finalizers only. (An Update would send the whole spec back as
// the Go types print it, e.g. "5m" as "5m0s", and bump the generation.)
func (c *Controller) setFinalizer(ctx context.Context, o client.Object, on bool) error {
	base, ok := o.DeepCopyObject().(client.Object)
	if !ok {
		return fmt.Errorf("%T is not a client.Object", o)
	}
	changed := false
	if on {
		changed = controllerutil.AddFinalizer(o, Finalizer)
	} else {
		changed = controllerutil.RemoveFinalizer(o, Finalizer)
	}
	if !changed {
		return nil
	}
	return c.client.Patch(ctx, o, client.MergeFrom(base))
}

// selector converts a Pipeline's nodeSelector; nil (no selector) selects
// no EdgeNode, while an empty selector ({}) selects them all.
func selector(s *pipeline.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, nil
	}
	ls := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, r := range s.MatchExpressions {
		ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: r.Key, Operator: metav1.LabelSelectorOperator(r.Operator), Values: r.Values})
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("spec.nodeSelector: %v", err)
	}
	return sel, nil
}

// selectNodes returns the names of the EdgeNodes sel matches (skipping
// unschedulable ones; nil matches none) plus names, sorted.
func (c *Controller) selectNodes(ctx context.Context, sel labels.Selector, names []string) ([]string, error) {
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	if sel != nil {
		var list eddyv1alpha1.EdgeNodeList
		if err := c.client.List(ctx, &list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, fmt.Errorf("list edge nodes: %w", err)
		}
		for _, n := range list.Items {
			if !n.Spec.Unschedulable && n.DeletionTimestamp.IsZero() {
				set[n.Name] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// ship writes obj to every node in nodes that does not hold this version
// yet and removes it from nodes that hold it but are no longer selected.
// It returns the nodes whose write failed, with the error.
func (c *Controller) ship(ctx context.Context, key objKey, obj Object, nodes []string) (map[string]error, error) {
	return c.shipIf(ctx, key, obj, nodes, func(h ObjectRef) bool { return h.Version != obj.Version || h.Hash != obj.Hash })
}

// shipByHash is ship for objects whose version is not meaningful alone:
// a node holding the same hash is current.
func (c *Controller) shipByHash(ctx context.Context, key objKey, obj Object, nodes []string) (map[string]error, error) {
	return c.shipIf(ctx, key, obj, nodes, func(h ObjectRef) bool { return h.Hash != obj.Hash })
}

func (c *Controller) shipIf(ctx context.Context, key objKey, obj Object, nodes []string, stale func(ObjectRef) bool) (map[string]error, error) {
	holders, err := c.store.Holders(ctx, key.Kind, key.Namespace, key.Name)
	if err != nil {
		return nil, fmt.Errorf("read plans of %s %s/%s: %w", key.Kind, key.Namespace, key.Name, err)
	}
	held := make(map[string]ObjectRef, len(holders))
	for _, h := range holders {
		held[h.Node] = h
	}
	want := make(map[string]bool, len(nodes))
	var todo []string
	for _, n := range nodes {
		want[n] = true
		if h, ok := held[n]; !ok || stale(h) {
			todo = append(todo, n)
		}
	}
	failed := map[string]error{}
	var mu sync.Mutex
	c.parallel(todo, func(n string) {
		if err := c.store.Put(ctx, n, obj); err != nil {
			mu.Lock()
			failed[n] = err
			mu.Unlock()
			return
		}
		c.planWrites.Add(1)
	})
	var gone []string
	for _, h := range holders {
		if !want[h.Node] {
			gone = append(gone, h.Node)
		}
	}
	c.parallel(gone, func(n string) {
		if err := c.store.Delete(ctx, n, key.Kind, key.Namespace, key.Name); err != nil {
			c.opts.Logger.Warn("remove plan from a node that is no longer selected", "node", n,
				"object", key.Namespace+"/"+key.Name, "err", err)
			return
		}
		c.track.forgetNode(key, n)
	})
	return failed, nil
}

// removeEverywhere deletes an object's plans from every node holding one.
func (c *Controller) removeEverywhere(ctx context.Context, key objKey) error {
	holders, err := c.store.Holders(ctx, key.Kind, key.Namespace, key.Name)
	if err != nil {
		return fmt.Errorf("read plans of %s %s/%s: %w", key.Kind, key.Namespace, key.Name, err)
	}
	var mu sync.Mutex
	var errs []string
	nodes := make([]string, len(holders))
	for i, h := range holders {
		nodes[i] = h.Node
	}
	c.parallel(nodes, func(n string) {
		if err := c.store.Delete(ctx, n, key.Kind, key.Namespace, key.Name); err != nil {
			mu.Lock()
			errs = append(errs, n+": "+err.Error())
			mu.Unlock()
		}
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("remove %s %s/%s from %d nodes: %s", key.Kind, key.Namespace, key.Name, len(errs), strings.Join(errs, "; "))
	}
	return nil
}

// parallel runs fn for every item with at most Writers at once.
func (c *Controller) parallel(items []string, fn func(string)) {
	if len(items) == 0 {
		return
	}
	sem := make(chan struct{}, c.opts.Writers)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(it)
		}()
	}
	wg.Wait()
}

// pipelineStatus fills counters, per-node states and the Delivered and
// Running conditions from the write results and the nodes' reports.
func (c *Controller) pipelineStatus(st *eddyv1alpha1.PipelineStatus, key objKey, gen int64, nodes []string, failed map[string]error) {
	reports := c.track.reportsFor(key)
	now := c.opts.Clock.Now()
	st.MessagesIn, st.MessagesOut, st.Errors, st.AlertsFiring = 0, 0, 0, 0
	var list []eddyv1alpha1.PipelineNodeStatus
	var running int32
	var undelivered, notRunning []string
	for _, n := range nodes {
		ns := eddyv1alpha1.PipelineNodeStatus{Node: n, State: eddyv1alpha1.NodeDelivered}
		r, reported := reports[n]
		if reported {
			st.MessagesIn += r.MessagesIn
			st.MessagesOut += r.MessagesOut
			st.Errors += r.Errors
			st.AlertsFiring += r.AlertsFiring
			ns.Version = r.Version
		}
		info, known := c.track.nodeInfo(n)
		switch {
		case failed[n] != nil:
			ns.State = eddyv1alpha1.NodePending
			ns.Message = "plan not written: " + failed[n].Error()
			undelivered = append(undelivered, n+": "+failed[n].Error())
		case reported && r.Version == gen && r.Failed:
			ns.State = eddyv1alpha1.NodeFailed
			ns.Message = r.Error
			notRunning = append(notRunning, n+": failed: "+r.Error)
		case reported && r.Version == gen && ready(info, known, now, c.opts.NodeNotReadyAfter):
			ns.State = eddyv1alpha1.NodeRunning
			running++
		case reported && r.Version == gen:
			notRunning = append(notRunning, n+": node not ready (no heartbeat for "+c.opts.NodeNotReadyAfter.String()+")")
		case !known:
			notRunning = append(notRunning, n+": not registered yet")
		default:
			notRunning = append(notRunning, n+": delivered, not reported running yet")
		}
		list = append(list, ns)
	}
	// Nodes not running the current plan first, then by name; bounded.
	sort.SliceStable(list, func(i, j int) bool {
		ri, rj := list[i].State == eddyv1alpha1.NodeRunning, list[j].State == eddyv1alpha1.NodeRunning
		if ri != rj {
			return !ri
		}
		return list[i].Node < list[j].Node
	})
	if len(list) > eddyv1alpha1.MaxNodeStatuses {
		list = list[:eddyv1alpha1.MaxNodeStatuses]
	}
	st.NodeStatuses = list
	st.NodesSelected = int32(len(nodes))
	st.NodesRunning = running
	st.Nodes = fmt.Sprintf("%d/%d", running, len(nodes))
	switch {
	case len(nodes) == 0:
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Delivered, false, "NoNodesSelected",
			"no EdgeNode matches spec.nodeSelector and spec.nodeNames is empty")
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Running, false, "NoNodesSelected", "runs on no node")
		return
	case len(undelivered) > 0:
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Delivered, false, "WriteFailed",
			fmt.Sprintf("%d/%d nodes not written: %s", len(undelivered), len(nodes), firstFew(undelivered)))
	default:
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Delivered, true, "Delivered",
			fmt.Sprintf("generation %d written for %d nodes", gen, len(nodes)))
	}
	if len(notRunning) == 0 {
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Running, true, "Running",
			fmt.Sprintf("generation %d running on %d nodes", gen, len(nodes)))
	} else {
		reason := "Waiting"
		for _, m := range notRunning {
			if strings.Contains(m, ": failed: ") {
				reason = "Failed"
			}
		}
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Running, false, reason,
			fmt.Sprintf("%d/%d nodes run generation %d; %s", running, len(nodes), gen, firstFew(notRunning)))
	}
}

// firstFew joins at most five messages, saying how many were left out.
func firstFew(msgs []string) string {
	sort.Strings(msgs)
	if len(msgs) <= 5 {
		return strings.Join(msgs, "; ")
	}
	return strings.Join(msgs[:5], "; ") + fmt.Sprintf("; and %d more", len(msgs)-5)
}

// setCond sets one condition, keeping its transition time when the status
// does not change.
func (c *Controller) setCond(conds *[]metav1.Condition, gen int64, t eddyv1alpha1.ConditionType, ok bool, reason, msg string) {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: string(t), Status: s, Reason: reason, Message: msg, ObservedGeneration: gen,
		LastTransitionTime: metav1.NewTime(c.opts.Clock.Now()),
	})
}

// writeStatus patches the status subresource if it changed.
func (c *Controller) writeStatus(ctx context.Context, p *eddyv1alpha1.Pipeline, old *eddyv1alpha1.PipelineStatus) error {
	if equality.Semantic.DeepEqual(old, &p.Status) {
		return nil
	}
	base := p.DeepCopy()
	base.Status = *old
	if err := c.client.Status().Patch(ctx, p, client.MergeFrom(base)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("write status of pipeline %s/%s: %w", p.Namespace, p.Name, err)
	}
	c.statusWrites.Add(1)
	return nil
}
