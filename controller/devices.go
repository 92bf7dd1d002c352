package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	devicesv1beta1 "github.com/eddy-edge/eddy/controller/apis/devices/v1beta1"
	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	"github.com/eddy-edge/eddy/pipeline/devices"
)

// Devices have no status subresource (as in KubeEdge's CRD), so every
// status write bumps metadata.generation: react to spec and label changes
// only, never to our own status writes.
var deviceSpecChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*devicesv1beta1.Device)
		n, ok2 := e.ObjectNew.(*devicesv1beta1.Device)
		if !ok1 || !ok2 {
			return true
		}
		return !equality.Semantic.DeepEqual(o.Spec, n.Spec) ||
			!n.DeletionTimestamp.Equal(o.DeletionTimestamp) ||
			!equality.Semantic.DeepEqual(o.Finalizers, n.Finalizers)
	},
}

func (c *Controller) setupDevices() error {
	// Index devices by model so a model change re-runs its devices.
	if err := c.mgr.GetFieldIndexer().IndexField(context.Background(), &devicesv1beta1.Device{}, modelIndex,
		func(o client.Object) []string {
			d := o.(*devicesv1beta1.Device)
			if d.Spec.DeviceModelRef == nil {
				return nil
			}
			return []string{d.Spec.DeviceModelRef.Name}
		}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(c.mgr).
		Named("device").
		For(&devicesv1beta1.Device{}, builder.WithPredicates(deviceSpecChanged)).
		Watches(&devicesv1beta1.DeviceModel{}, handler.EnqueueRequestsFromMapFunc(c.devicesOfModel)).
		WatchesRawSource(source.Channel(c.deviceEvents, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: c.opts.Workers}).
		Complete(reconcile.Func(c.reconcileDevice))
}

const modelIndex = "spec.deviceModelRef.name"

func (c *Controller) devicesOfModel(ctx context.Context, o client.Object) []reconcile.Request {
	var list devicesv1beta1.DeviceList
	if err := c.client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{modelIndex: o.GetName()}); err != nil {
		c.opts.Logger.Error("list devices of a model", "model", o.GetNamespace()+"/"+o.GetName(), "err", err)
		return nil
	}
	out := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return out
}

// DeviceDocuments renders a Device and its DeviceModel as the KubeEdge
// documents the edge loads (pipeline/devices.Load, the loader `eddy
// validate` and `eddy edge` use): model first, then device, as JSON
// documents separated by "---". Fields the API server sets are left out.
func DeviceDocuments(d *devicesv1beta1.Device, m *devicesv1beta1.DeviceModel) ([]byte, error) {
	type meta struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	type doc struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   meta   `json:"metadata"`
		Spec       any    `json:"spec"`
	}
	var buf bytes.Buffer
	for i, x := range []doc{
		{devicesv1beta1.GroupVersion.String(), "DeviceModel", meta{m.Name, m.Namespace, m.Labels, nil}, m.Spec},
		{devicesv1beta1.GroupVersion.String(), "Device", meta{d.Name, d.Namespace, d.Labels, nil}, d.Spec},
	} {
		if i > 0 {
			buf.WriteString("\n---\n")
		}
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// CompileDevice checks a device and its model with the edge's loader and
// returns the documents to ship and their hash.
func CompileDevice(d *devicesv1beta1.Device, m *devicesv1beta1.DeviceModel) (docs []byte, hash string, err error) {
	docs, err = DeviceDocuments(d, m)
	if err != nil {
		return nil, "", err
	}
	devs, models, err := devices.Load("Device "+d.Namespace+"/"+d.Name, docs)
	if err == nil {
		_, err = devices.Resolve(devs, models)
	}
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(docs)
	return docs, hex.EncodeToString(sum[:12]), nil
}

func (c *Controller) reconcileDevice(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	key := objKey{KindDevice, req.Namespace, req.Name}
	var d devicesv1beta1.Device
	if err := c.client.Get(ctx, req.NamespacedName, &d); err != nil {
		if apierrors.IsNotFound(err) {
			c.track.forget(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !d.DeletionTimestamp.IsZero() {
		if err := c.removeEverywhere(ctx, key); err != nil {
			return reconcile.Result{}, err
		}
		c.track.forget(key)
		if controllerutil.RemoveFinalizer(&d, Finalizer) {
			if err := c.client.Update(ctx, &d); err != nil && !apierrors.IsNotFound(err) {
				return reconcile.Result{}, err
			}
		}
		return reconcile.Result{}, nil
	}
	if controllerutil.AddFinalizer(&d, Finalizer) {
		if err := c.client.Update(ctx, &d); err != nil {
			return reconcile.Result{}, err
		}
	}
	old := d.Status.DeepCopy()
	st := &d.Status
	gen := d.Generation

	var m devicesv1beta1.DeviceModel
	var docs []byte
	var hash string
	var err error
	if d.Spec.DeviceModelRef == nil || d.Spec.DeviceModelRef.Name == "" {
		err = fmt.Errorf("spec.deviceModelRef.name: required; name the DeviceModel of this device")
	} else if err = c.client.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.DeviceModelRef.Name}, &m); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		err = fmt.Errorf("spec.deviceModelRef.name: DeviceModel %s/%s does not exist; create it (kubectl apply) or fix the name",
			d.Namespace, d.Spec.DeviceModelRef.Name)
	} else {
		docs, hash, err = CompileDevice(&d, &m)
	}
	if err != nil {
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Compiled, false, "CompileError", err.Error())
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Delivered, false, "CompileError",
			"not delivered; the node keeps the last good version")
		return reconcile.Result{}, c.writeDeviceStatus(ctx, &d, old)
	}
	c.setCond(&st.Conditions, gen, eddyv1alpha1.Compiled, true, "Compiled", "plan "+hash)

	var nodes []string
	if d.Spec.NodeName != "" {
		nodes = []string{d.Spec.NodeName}
	}
	body, err := json.Marshal(string(docs))
	if err != nil {
		return reconcile.Result{}, err
	}
	// A device is current on a node when the hashes match: without a
	// status subresource every status write bumps the generation.
	obj := Object{Kind: KindDevice, Namespace: d.Namespace, Name: d.Name, Version: gen, Hash: hash, Spec: body}
	failed, err := c.shipByHash(ctx, key, obj, nodes)
	if err != nil {
		return reconcile.Result{}, err
	}
	switch {
	case len(nodes) == 0:
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Delivered, false, "NoNode", "spec.nodeName is empty: the device is attached to no node")
	case failed[nodes[0]] != nil:
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Delivered, false, "WriteFailed", nodes[0]+": "+failed[nodes[0]].Error())
	default:
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Delivered, true, "Delivered", "plan "+hash+" written for node "+nodes[0])
	}
	c.deviceTwins(st, key, &d)
	return reconcile.Result{}, c.writeDeviceStatus(ctx, &d, old)
}

// deviceTwins copies the node's reported values and online state into the
// status (KubeEdge v1.22's status.twins[].reported and status.state).
func (c *Controller) deviceTwins(st *devicesv1beta1.DeviceStatus, key objKey, d *devicesv1beta1.Device) {
	if d.Spec.NodeName == "" {
		return
	}
	r, ok := c.track.reportsFor(key)[d.Spec.NodeName]
	if !ok {
		return
	}
	ts := r.Time.UTC().Format(time.RFC3339)
	byName := map[string]int{}
	for i, t := range st.Twins {
		byName[t.PropertyName] = i
	}
	names := make([]string, 0, len(r.Twins))
	for n := range r.Twins {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := r.Twins[n]
		i, ok := byName[n]
		if !ok {
			st.Twins = append(st.Twins, devicesv1beta1.Twin{PropertyName: n})
			i = len(st.Twins) - 1
		}
		if st.Twins[i].Reported.Value != v {
			st.Twins[i].Reported = devicesv1beta1.TwinProperty{Value: v, Metadata: map[string]string{"timestamp": ts}}
		}
	}
	if r.Online != nil {
		if *r.Online {
			st.State = devicesv1beta1.DeviceOnline
			st.LastOnlineTime = ts
		} else {
			st.State = devicesv1beta1.DeviceOffline
		}
	}
}

// writeDeviceStatus merge-patches status on the object itself (there is no
// status subresource), only when it changed.
func (c *Controller) writeDeviceStatus(ctx context.Context, d *devicesv1beta1.Device, old *devicesv1beta1.DeviceStatus) error {
	if equality.Semantic.DeepEqual(old, &d.Status) {
		return nil
	}
	base := d.DeepCopy()
	base.Status = *old
	if err := c.client.Patch(ctx, d, client.MergeFrom(base)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("write status of device %s/%s: %w", d.Namespace, d.Name, err)
	}
	c.statusWrites.Add(1)
	return nil
}
