package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	devicesv1beta1 "github.com/eddy-edge/eddy/controller/apis/devices/v1beta1"
	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	"github.com/eddy-edge/eddy/controller/k8stest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline/devices"
)

func thermostatYAML(t *testing.T, node string) string {
	b, err := os.ReadFile(filepath.Join(k8stest.RepoDir(), "examples", "modbus-thermostat", "devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "nodeName: edge-1", "nodeName: "+node)
}

// TestDevicesWithEddyCRDs and TestKubeEdgeCRDsCoexist run the same device
// story on Eddy's generated CRDs and on KubeEdge's own.
func TestDevicesWithEddyCRDs(t *testing.T) {
	deviceStory(t, startHarness(t, Options{}))
}

// TestKubeEdgeCRDsCoexist installs KubeEdge's Device, DeviceModel, Rule and
// RuleEndpoint CRDs (testdata, from kubeedge/kubeedge) and only Eddy's
// own eddy.dev CRDs, runs the controller, and checks that devices work and
// that KubeEdge's CRDs are left exactly as they were.
func TestKubeEdgeCRDsCoexist(t *testing.T) {
	ko := k8stest.Options{CRDDirs: []string{
		filepath.Join(k8stest.CRDDir(), "eddy.dev_pipelines.yaml"),
		filepath.Join(k8stest.CRDDir(), "eddy.dev_edgenodes.yaml"),
		filepath.Join("testdata", "kubeedge-crds"),
	}}
	h := startHarnessOn(t, ko, Options{})
	before := crdVersions(t, h)
	deviceStory(t, h)
	if after := crdVersions(t, h); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("KubeEdge's CRDs changed while the controller ran: %v -> %v", before, after)
	}
}

func crdVersions(t *testing.T, h *harness) map[string]string {
	out := map[string]string{}
	for _, n := range []string{"devices.devices.kubeedge.io", "devicemodels.devices.kubeedge.io", "rules.rules.kubeedge.io", "ruleendpoints.rules.kubeedge.io"} {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := h.client.Get(context.Background(), types.NamespacedName{Name: n}, &crd); err != nil {
			t.Fatalf("get CRD %s: %v", n, err)
		}
		out[n] = crd.ResourceVersion
	}
	return out
}

func deviceStory(t *testing.T, h *harness) {
	// The edge reports the twin values it holds for the device.
	reported := map[string]string{"temperature": "21.5", "limit": "30"}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		online := true
		for {
			h.feed.nodes <- NodeInfo{Name: "edge-1", Version: "test", Time: time.Now()}
			for _, o := range h.store.objects("edge-1") {
				h.feed.reports <- Report{Node: "edge-1", Kind: o.Kind, Namespace: o.Namespace, Name: o.Name,
					Version: o.Version, Twins: reported, Online: &online, Time: time.Now()}
			}
			select {
			case <-h.ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	h.cluster.MustKubectl(t, thermostatYAML(t, "edge-1"), "apply", "-f", "-")

	// The device and its model reach edge-1 as documents the edge's loader
	// accepts, with the desired value from the CR.
	var o Object
	mqtttest.WaitForErr(t, "device plan on edge-1", func() error {
		var ok bool
		if o, ok = h.store.get("edge-1", KindDevice, "default", "thermostat-1"); !ok {
			return fmt.Errorf("no plan")
		}
		return nil
	})
	limit := func(o Object) string {
		t.Helper()
		var docs string
		if err := jsonUnmarshal(o.Spec, &docs); err != nil {
			t.Fatal(err)
		}
		devs, models, err := devices.Load("plan", []byte(docs))
		if err != nil {
			t.Fatalf("the edge's loader rejects the shipped device: %v", err)
		}
		res, err := devices.Resolve(devs, models)
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
		return fmt.Sprint(res[0].Property("limit").Desired)
	}
	if got := limit(o); got != "30" {
		t.Errorf("desired limit on the edge = %s, want 30", got)
	}

	// Reported values and the online state come back into the status.
	mqtttest.WaitForErr(t, "reported twins in the Device status", func() error {
		d := h.device("thermostat-1")
		if d.Status.State != devicesv1beta1.DeviceOnline {
			return fmt.Errorf("state %q", d.Status.State)
		}
		for _, tw := range d.Status.Twins {
			if tw.PropertyName == "temperature" && tw.Reported.Value == "21.5" {
				if !meta.IsStatusConditionTrue(d.Status.Conditions, string(eddyv1alpha1.Delivered)) {
					return fmt.Errorf("conditions %+v", d.Status.Conditions)
				}
				return nil
			}
		}
		return fmt.Errorf("twins %+v", d.Status.Twins)
	})

	// A changed desired value in the CR reaches the node.
	h.cluster.MustKubectl(t, "", "patch", "device", "thermostat-1", "--type=json",
		`-p=[{"op":"replace","path":"/spec/properties/1/desired/value","value":"42"}]`)
	mqtttest.WaitForErr(t, "new desired value on edge-1", func() error {
		o, _ := h.store.get("edge-1", KindDevice, "default", "thermostat-1")
		if got := limit(o); got != "42" {
			return fmt.Errorf("desired limit %s", got)
		}
		return nil
	})

	// A value outside the model's range is refused with the field path,
	// and the node keeps the last good version.
	puts := h.store.putCount()
	h.cluster.MustKubectl(t, "", "patch", "device", "thermostat-1", "--type=json",
		`-p=[{"op":"replace","path":"/spec/properties/1/desired/value","value":"400"}]`)
	mqtttest.WaitForErr(t, "Compiled=False for an out-of-range desired value", func() error {
		d := h.device("thermostat-1")
		c := meta.FindStatusCondition(d.Status.Conditions, string(eddyv1alpha1.Compiled))
		if c == nil || c.Status != "False" || !strings.Contains(c.Message, "spec.properties[1].desired") {
			return fmt.Errorf("Compiled: %+v", c)
		}
		return nil
	})
	if h.store.putCount() != puts {
		t.Errorf("a device that does not compile was shipped")
	}

	h.cluster.MustKubectl(t, "", "delete", "device", "thermostat-1", "--wait=true", "--timeout=30s")
	if _, ok := h.store.get("edge-1", KindDevice, "default", "thermostat-1"); ok {
		t.Errorf("deleted device still on edge-1")
	}
}

func (h *harness) device(name string) *devicesv1beta1.Device {
	var d devicesv1beta1.Device
	if err := h.client.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: name}, &d); err != nil {
		h.t.Fatalf("get device %s: %v", name, err)
	}
	return &d
}
