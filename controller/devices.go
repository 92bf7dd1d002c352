package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

	devicesv1beta1 "github.com/eddy-edge/eddy/controller/apis/devices/v1beta1"
	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	"github.com/eddy-edge/eddy/fleet"
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

// kubeEdgeDoc is a KubeEdge resource as a user writes it: the fields the
// API server sets are left out.
type kubeEdgeDoc struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   kubeEdgeMeta `json:"metadata"`
	Spec       any          `json:"spec"`
}

type kubeEdgeMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// DeviceJSON renders a Device as the KubeEdge document the edge loads.
func DeviceJSON(d *devicesv1beta1.Device) ([]byte, error) {
	return json.Marshal(kubeEdgeDoc{devicesv1beta1.GroupVersion.String(), "Device",
		kubeEdgeMeta{d.Name, d.Namespace, d.Labels}, d.Spec})
}

// ModelJSON renders a DeviceModel as the KubeEdge document the edge loads.
func ModelJSON(m *devicesv1beta1.DeviceModel) ([]byte, error) {
	return json.Marshal(kubeEdgeDoc{devicesv1beta1.GroupVersion.String(), "DeviceModel",
		kubeEdgeMeta{m.Name, m.Namespace, m.Labels}, m.Spec})
}

// CompileDevice checks a device and its model with the edge's loader
// (pipeline/devices.Load and Resolve, as `eddy validate` and `eddy edge`
// do) and returns both as the JSON documents to ship.
func CompileDevice(d *devicesv1beta1.Device, m *devicesv1beta1.DeviceModel) (device, model []byte, err error) {
	if device, err = DeviceJSON(d); err != nil {
		return nil, nil, err
	}
	if model, err = ModelJSON(m); err != nil {
		return nil, nil, err
	}
	docs := append(append(append([]byte{}, model...), "\n---\n"...), device...)
	devs, models, err := devices.Load("Device "+d.Namespace+"/"+d.Name, docs)
	if err == nil {
		_, err = devices.Resolve(devs, models)
	}
	if err != nil {
		return nil, nil, err
	}
	return device, model, nil
}

// objectHash is fleet's hash of a resource: SHA-256 over its canonical
// JSON (keys sorted).
func objectHash(doc []byte) (string, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return "", err
	}
	canon, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return fleet.ObjectHash(canon), nil
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
		if ref := d.Spec.DeviceModelRef; ref != nil && ref.Name != "" {
			if err := c.syncModelByName(ctx, d.Namespace, ref.Name); err != nil {
				return reconcile.Result{}, err
			}
		}
		if err := c.setFinalizer(ctx, &d, false); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, nil
	}
	if err := c.setFinalizer(ctx, &d, true); err != nil {
		return reconcile.Result{}, err
	}
	old := d.Status.DeepCopy()
	st := &d.Status
	gen := d.Generation

	var m devicesv1beta1.DeviceModel
	var doc, modelDoc []byte
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
		doc, modelDoc, err = CompileDevice(&d, &m)
	}
	var hash string
	if err == nil {
		hash, err = objectHash(doc)
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
	// The model first (the edge needs it to load the device), on every
	// node that has a device of it.
	if err := c.syncModel(ctx, &m, modelDoc); err != nil {
		return reconcile.Result{}, err
	}
	// A device is current on a node when the hashes match: without a
	// status subresource every status write bumps the generation.
	obj := Object{Kind: KindDevice, Namespace: d.Namespace, Name: d.Name, Version: gen, Hash: hash, Resource: doc}
	failed, err := c.shipByHash(ctx, key, obj, nodes)
	if err != nil {
		return reconcile.Result{}, err
	}
	switch {
	case len(nodes) == 0:
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Delivered, false, "NoNode", "spec.nodeName is empty: the device is attached to no node")
	case failed[nodes[0]] != nil:
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Delivered, false, "WriteFailed", nodes[0]+": "+failed[nodes[0]].Error())
		c.deviceTwins(st, key, &d)
		c.deviceState(st, key, &d)
		if err := c.writeDeviceStatus(ctx, &d, old); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{RequeueAfter: retryAfter}, nil
	default:
		c.setCond(&st.Conditions, gen, eddyv1alpha1.Delivered, true, "Delivered", "plan "+hash+" written for node "+nodes[0])
	}
	c.deviceTwins(st, key, &d)
	c.deviceState(st, key, &d)
	return reconcile.Result{}, c.writeDeviceStatus(ctx, &d, old)
}

// modelNodes returns the nodes that have a live device of the model.
func (c *Controller) modelNodes(ctx context.Context, ns, model string) ([]string, error) {
	var list devicesv1beta1.DeviceList
	if err := c.client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{modelIndex: model}); err != nil {
		return nil, fmt.Errorf("list devices of model %s/%s: %w", ns, model, err)
	}
	set := map[string]bool{}
	for _, d := range list.Items {
		if d.Spec.NodeName != "" && d.DeletionTimestamp.IsZero() {
			set[d.Spec.NodeName] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// syncModel places a DeviceModel on exactly the nodes that have a device
// of it.
func (c *Controller) syncModel(ctx context.Context, m *devicesv1beta1.DeviceModel, doc []byte) error {
	nodes, err := c.modelNodes(ctx, m.Namespace, m.Name)
	if err != nil {
		return err
	}
	hash, err := objectHash(doc)
	if err != nil {
		return err
	}
	obj := Object{Kind: KindDeviceModel, Namespace: m.Namespace, Name: m.Name, Version: m.Generation, Hash: hash, Resource: doc}
	failed, err := c.shipByHash(ctx, objKey{KindDeviceModel, m.Namespace, m.Name}, obj, nodes)
	if err != nil {
		return err
	}
	for n, err := range failed {
		return fmt.Errorf("write DeviceModel %s/%s for node %s: %w", m.Namespace, m.Name, n, err)
	}
	return nil
}

// syncModelByName is syncModel after a device left: it removes the model
// from nodes that no longer need it (and ships it where still needed).
func (c *Controller) syncModelByName(ctx context.Context, ns, name string) error {
	var m devicesv1beta1.DeviceModel
	if err := c.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &m); err != nil {
		if apierrors.IsNotFound(err) {
			return c.removeEverywhere(ctx, objKey{KindDeviceModel, ns, name})
		}
		return err
	}
	doc, err := ModelJSON(&m)
	if err != nil {
		return err
	}
	return c.syncModel(ctx, &m, doc)
}

// deviceTwins copies the reported values the device's node sent up into
// the status (KubeEdge v1.22's status.twins[].reported, with the edge's
// timestamp in metadata).
func (c *Controller) deviceTwins(st *devicesv1beta1.DeviceStatus, key objKey, d *devicesv1beta1.Device) {
	twins := c.track.twinsOf(key)
	byName := map[string]int{}
	for i, t := range st.Twins {
		byName[t.PropertyName] = i
	}
	names := make([]string, 0, len(twins))
	for n := range twins {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := twins[n]
		if d.Spec.NodeName != "" && r.Node != d.Spec.NodeName {
			continue // a report from the node the device left
		}
		i, ok := byName[n]
		if !ok {
			st.Twins = append(st.Twins, devicesv1beta1.Twin{PropertyName: n})
			i = len(st.Twins) - 1
		}
		if st.Twins[i].Reported.Value != r.Value {
			st.Twins[i].Reported = devicesv1beta1.TwinProperty{Value: r.Value,
				Metadata: map[string]string{"timestamp": strconv.FormatInt(r.Time.UnixMilli(), 10)}}
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
