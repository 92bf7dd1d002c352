package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/internal/mqtttest"
)

// TestDeviceStateIntoStatus: the device states in a node's status records
// become the Device's status.state and status.lastOnlineTime; a flood of
// records that change only lastOnline costs no status write, and a
// Device that opts out (spec.stateReport.reportToCloud: false) keeps its
// state to the edge.
func TestDeviceStateIntoStatus(t *testing.T) {
	h := startHarness(t, Options{})
	h.cluster.MustKubectl(t, thermostatYAML(t, "edge-1"), "apply", "-f", "-")
	mqtttest.WaitForErr(t, "device plan on edge-1", func() error {
		if _, ok := h.get("edge-1", KindDevice, "default", "thermostat-1"); !ok {
			return fmt.Errorf("not shipped yet")
		}
		return nil
	})
	report := func(state fleet.DeviceConnState, at time.Time) {
		t.Helper()
		st := &fleet.NodeStatus{Node: "edge-1", Version: "sim", StartedAt: at, ReportedAt: time.Now(),
			HeartbeatInterval: fleet.Duration{Duration: time.Minute},
			Devices:           []fleet.DeviceState{{Device: "default/thermostat-1", State: state, LastOnline: at}}}
		if err := h.fleet.PutNodeStatus(context.Background(), st); err != nil {
			t.Fatal(err)
		}
	}
	waitState := func(want fleet.DeviceConnState, at time.Time) {
		t.Helper()
		wantTime := at.UTC().Format(time.RFC3339)
		mqtttest.WaitForErr(t, "status.state "+string(want), func() error {
			d := h.device("thermostat-1")
			if string(d.Status.State) != string(want) || d.Status.LastOnlineTime != wantTime {
				return fmt.Errorf("state %q lastOnlineTime %q, want %q %q", d.Status.State, d.Status.LastOnlineTime, want, wantTime)
			}
			return nil
		})
	}
	t1 := time.Now().Add(-time.Minute).Truncate(time.Second)
	report(fleet.DeviceOnline, t1)
	waitState(fleet.DeviceOnline, t1)

	// Mappers report state every second (KubeEdge's do): records whose
	// state did not change are not written.
	// Every write of a Device moves its resourceVersion (it has no status
	// subresource). Wait until the writes of the apply have settled.
	var rv string
	mqtttest.WaitForErr(t, "the Device settled", func() error {
		before := h.device("thermostat-1").ResourceVersion
		time.Sleep(300 * time.Millisecond)
		if rv = h.device("thermostat-1").ResourceVersion; rv != before {
			return fmt.Errorf("still written: %s -> %s", before, rv)
		}
		return nil
	})
	for i := 1; i <= 30; i++ {
		report(fleet.DeviceOnline, t1.Add(time.Duration(i)*time.Second))
	}
	time.Sleep(500 * time.Millisecond) // five status intervals: any write would have happened
	if d := h.device("thermostat-1"); d.ResourceVersion != rv {
		t.Errorf("the Device was written for 30 records with an unchanged state (lastOnlineTime %s)", d.Status.LastOnlineTime)
	}

	t2 := time.Now().Truncate(time.Second)
	report(fleet.DeviceOffline, t2)
	waitState(fleet.DeviceOffline, t2)

	// reportToCloud: false keeps the state on the edge.
	h.cluster.MustKubectl(t, "", "patch", "device", "thermostat-1", "--type=merge",
		`-p={"spec":{"stateReport":{"reportToCloud":false}}}`)
	mqtttest.WaitForErr(t, "the patched device shipped", func() error {
		env, ok := h.get("edge-1", KindDevice, "default", "thermostat-1")
		if !ok || !strings.Contains(string(env.Object), "stateReport") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	report(fleet.DeviceOnline, t2.Add(time.Second))
	time.Sleep(500 * time.Millisecond)
	if d := h.device("thermostat-1"); d.Status.State != "offline" {
		t.Errorf("state %q written for a device with reportToCloud: false", d.Status.State)
	}
}
