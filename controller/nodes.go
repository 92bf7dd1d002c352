package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
)

func (c *Controller) setupNodes() error {
	return ctrl.NewControllerManagedBy(c.mgr).
		Named("edgenode").
		For(&eddyv1alpha1.EdgeNode{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(c.nodeEvents, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: c.opts.Workers}).
		Complete(reconcile.Func(c.reconcileNode))
}

// reconcileNode creates an EdgeNode for a registered runner and keeps its
// status (Ready, version, pipeline count) current. Heartbeats are not
// written one by one: lastHeartbeatTime is refreshed every
// HeartbeatWriteInterval, and a change of Ready is written at once (the
// reconcile is re-queued for the moment the node would turn NotReady).
func (c *Controller) reconcileNode(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	name := req.Name
	info, known := c.track.nodeInfo(name)
	now := c.opts.Clock.Now()
	var n eddyv1alpha1.EdgeNode
	err := c.client.Get(ctx, client.ObjectKey{Name: name}, &n)
	switch {
	case apierrors.IsNotFound(err) && !known:
		return reconcile.Result{}, nil
	case apierrors.IsNotFound(err):
		n = eddyv1alpha1.EdgeNode{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: info.Labels}}
		if err := c.client.Create(ctx, &n); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return reconcile.Result{Requeue: true}, nil
			}
			return reconcile.Result{}, fmt.Errorf("create EdgeNode %s from its registration: %w", name, err)
		}
		c.opts.Logger.Info("edge node registered", "node", name, "labels", info.Labels, "version", info.Version)
	case err != nil:
		return reconcile.Result{}, err
	}
	if !n.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	old := n.Status.DeepCopy()
	st := &n.Status
	var requeue time.Duration
	if known {
		st.Version = info.Version
		st.ReportedLabels = info.Labels
		st.Pipelines = c.track.pipelinesOn(name)
		isReady := ready(info, true, now, c.opts.NodeNotReadyAfter)
		wasReady := meta.IsStatusConditionTrue(st.Conditions, string(eddyv1alpha1.Ready))
		stale := st.LastHeartbeatTime == nil || info.Time.Sub(st.LastHeartbeatTime.Time) >= c.opts.HeartbeatWriteInterval
		if isReady != wasReady || stale {
			t := metav1.NewTime(info.Time)
			st.LastHeartbeatTime = &t
		}
		if isReady {
			c.setCond(&st.Conditions, n.Generation, eddyv1alpha1.Ready, true, "Heartbeat", "heartbeats arrive")
			requeue = min(info.Time.Add(c.opts.NodeNotReadyAfter).Sub(now)+time.Millisecond, c.opts.HeartbeatWriteInterval)
		} else {
			c.setCond(&st.Conditions, n.Generation, eddyv1alpha1.Ready, false, "HeartbeatMissing",
				fmt.Sprintf("no heartbeat since %s (more than %s)", info.Time.UTC().Format(time.RFC3339), c.opts.NodeNotReadyAfter))
			requeue = c.opts.HeartbeatWriteInterval
		}
	} else if wait := c.opts.NodeNotReadyAfter - now.Sub(c.started); wait > 0 {
		// The controller just started: give the node one silence period to
		// be heard before calling it NotReady.
		return reconcile.Result{RequeueAfter: wait}, nil
	} else {
		c.setCond(&st.Conditions, n.Generation, eddyv1alpha1.Ready, false, "HeartbeatMissing",
			fmt.Sprintf("no heartbeat for %s since the controller started", c.opts.NodeNotReadyAfter))
	}
	if !equality.Semantic.DeepEqual(old, st) {
		base := n.DeepCopy()
		base.Status = *old
		if err := c.client.Status().Patch(ctx, &n, client.MergeFrom(base)); err != nil {
			if apierrors.IsNotFound(err) {
				return reconcile.Result{}, nil
			}
			return reconcile.Result{}, fmt.Errorf("write status of EdgeNode %s: %w", name, err)
		}
		c.statusWrites.Add(1)
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}
