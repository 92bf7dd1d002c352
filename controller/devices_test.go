package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	devicesv1beta1 "github.com/eddy-edge/eddy/controller/apis/devices/v1beta1"
	eddyv1alpha1 "github.com/eddy-edge/eddy/controller/apis/eddy/v1alpha1"
	"github.com/eddy-edge/eddy/controller/k8stest"
	"github.com/eddy-edge/eddy/fleet"
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
		filepath.Join(k8stest.CRDDir(), "eddy"),
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
	h.edge("edge-1", nil, nil)
	h.cluster.MustKubectl(t, thermostatYAML(t, "edge-1"), "apply", "-f", "-")

	// The device and its model reach edge-1 as documents the edge's loader
	// accepts, with the desired value from the CR.
	var dev, model *fleet.Envelope
	mqtttest.WaitForErr(t, "device and model plans on edge-1", func() error {
		var ok1, ok2 bool
		dev, ok1 = h.get("edge-1", KindDevice, "default", "thermostat-1")
		model, ok2 = h.get("edge-1", KindDeviceModel, "default", "thermostat-model")
		if !ok1 || !ok2 {
			return fmt.Errorf("device %v, model %v", ok1, ok2)
		}
		return nil
	})
	limit := func(dev *fleet.Envelope) string {
		t.Helper()
		docs := string(model.Object) + "\n---\n" + string(dev.Object)
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
	if got := limit(dev); got != "30" {
		t.Errorf("desired limit on the edge = %s, want 30", got)
	}

	// A reported value forwarded by the edge comes back into the status.
	publishTwin(t, h.fleet, "edge-1", "default/thermostat-1", "temperature", 21.5)
	mqtttest.WaitForErr(t, "reported twins in the Device status", func() error {
		d := h.device("thermostat-1")
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
		o, ok := h.get("edge-1", KindDevice, "default", "thermostat-1")
		if !ok {
			return fmt.Errorf("no device plan")
		}
		if got := limit(o); got != "42" {
			return fmt.Errorf("desired limit %s", got)
		}
		return nil
	})

	// A value outside the model's range is refused with the field path,
	// and the node keeps the last good version.
	puts := h.ctrl.PlanWrites()
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
	if h.ctrl.PlanWrites() != puts {
		t.Errorf("a device that does not compile was shipped")
	}

	h.cluster.MustKubectl(t, "", "delete", "device", "thermostat-1", "--wait=true", "--timeout=30s")
	if _, ok := h.get("edge-1", KindDevice, "default", "thermostat-1"); ok {
		t.Errorf("deleted device still on edge-1")
	}
	if _, ok := h.get("edge-1", KindDeviceModel, "default", "thermostat-model"); ok {
		t.Errorf("the model of the deleted device (no other device uses it) is still on edge-1")
	}
}

func (h *harness) device(name string) *devicesv1beta1.Device {
	var d devicesv1beta1.Device
	if err := h.client.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: name}, &d); err != nil {
		h.t.Fatalf("get device %s: %v", name, err)
	}
	return &d
}
