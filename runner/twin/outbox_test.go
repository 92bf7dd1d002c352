package twin

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

// orderPub records, per device, the actual edge version of every
// twin/update/result in the order they were published, yielding inside
// Publish so that concurrent deliveries interleave.
type orderPub struct {
	mu   sync.Mutex
	seen map[string][]int64
}

func (o *orderPub) Publish(topic string, payload []byte, qos byte, retain bool) error {
	runtime.Gosched()
	t, ok := kubeedge.ParseTopic(topic)
	if !ok || t.Kind != kubeedge.TwinUpdateResult {
		return nil
	}
	var res kubeedge.TwinUpdateMsg
	if err := json.Unmarshal(payload, &res); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen[t.ID] = append(o.seen[t.ID], res.Twin["temperature"].ActualVersion.Edge)
	return nil
}

// TestRepliesKeepOrderPerDevice: replies are published outside the write
// lock, yet each device's results go out in the order its updates were
// applied, however many writers run at once.
func TestRepliesKeepOrderPerDevice(t *testing.T) {
	pub := &orderPub{seen: map[string][]int64{}}
	m, err := New(context.Background(), Options{Node: "edge-a", Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ids := []string{"default/a", "default/b", "default/c"}
	var specs []DeviceSpec
	for _, id := range ids {
		specs = append(specs, DeviceSpec{ID: id, Properties: []PropertySpec{{Name: "temperature", Type: "INT"}}})
	}
	if err := m.SetDevices(context.Background(), specs); err != nil {
		t.Fatal(err)
	}
	const writers, each = 6, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := ids[(w+i)%len(ids)]
				body := fmt.Sprintf(`{"twin":{"temperature":{"actual":{"value":"%d"}}}}`, i)
				if err := m.HandleMessage(context.Background(), kubeedge.DeviceTopic(id, kubeedge.TwinUpdate), []byte(body)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, id := range ids {
		vs := pub.seen[id]
		total += len(vs)
		for i, v := range vs {
			if v != int64(i+1) {
				t.Fatalf("device %s: results published with edge versions %v; want 1, 2, 3, ... in order", id, vs)
			}
		}
	}
	if total != writers*each {
		t.Errorf("%d results; want %d", total, writers*each)
	}
	if n := len(m.out.lanes); n != 0 {
		t.Errorf("%d lanes left in the outbox after every delivery; idle lanes must be dropped", n)
	}
}

func TestCheckChangesNothing(t *testing.T) {
	m, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	bad := []DeviceSpec{{ID: "default/a", Properties: []PropertySpec{{Name: "has space"}}}}
	if err := m.Check(bad); err == nil || !strings.Contains(err.Error(), `property name "has space" is invalid`) {
		t.Fatalf("Check = %v", err)
	}
	if err := m.Check([]DeviceSpec{{ID: "default/a"}}); err != nil {
		t.Fatal(err)
	}
	if n := len(m.Devices()); n != 0 {
		t.Fatalf("Check declared %d devices", n)
	}
}
