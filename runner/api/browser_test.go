package api

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/eddy-edge/eddy/internal/testtools"
	"github.com/eddy-edge/eddy/runner/twin"
)

// chromium returns the path of a Chromium binary. It skips the test when
// there is none, except in CI (CI set), where the browser test must run.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testtools.Missing(t, "chromium", "apt-get install -y chromium, or make deps")
	return ""
}

// artifactDir is where screenshots go: $EDDY_ARTIFACTS, else the test's
// temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("EDDY_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

const windowYAML = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: line-avg, namespace: plant}
spec:
  source:
    mqtt: {topic: "factory/+/data", format: json}
  key: device
  steps:
    - filter: "temperature != nil"
    - window: {tumbling: 1s}
    - aggregate: {avg_t: "avg(temperature)", n: "count()"}
  sinks:
    - mqtt: {topic: "stats/{{key}}"}
`

// TestDashboardInBrowser runs the dashboard in headless Chromium against
// the API over real parts: MQTT messages published by a network client
// flow through the broker and the WAL into the pipelines, and the page must
// ask for the token, list the pipeline, show its counters rising and an
// alert appearing, and stream the pipeline's output.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := chromium(t)
	ts := newTestServer(t, Options{RequireAuth: true})
	ts.apply(t, thermoYAML)
	ts.apply(t, windowYAML)
	if err := ts.twins.SetDevices(context.Background(), []twin.DeviceSpec{
		{ID: "default/thermo-1", Description: "press line 1", Properties: []twin.PropertySpec{{Name: "setpoint", Type: "INT", Desired: "21"}}},
		{ID: "default/thermo-2", Description: "press line 2", Properties: []twin.PropertySpec{{Name: "setpoint", Type: "INT", Desired: "23"}}},
	}); err != nil {
		t.Fatal(err)
	}

	// A real MQTT client over TCP, like a device.
	opts := paho.NewClientOptions().AddBroker("tcp://" + ts.broker.Addr().String()).SetClientID("thermo-sim")
	mc := paho.NewClient(opts)
	if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect: %v", tok.Error())
	}
	defer mc.Disconnect(100)
	var pubMu sync.Mutex
	publish := func(topic, payload string) {
		pubMu.Lock()
		defer pubMu.Unlock()
		if tok := mc.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Errorf("MQTT publish: %v", tok.Error())
		}
	}
	publish("$hw/events/device/default/thermo-1/state/update", `{"state":"online"}`)
	publish("$hw/events/device/default/thermo-1/twin/update", `{"event_id":"e1","timestamp":1700000000000,"twin":{"setpoint":{"actual":{"value":"21"}}}}`)
	publish("$hw/events/device/default/thermo-2/state/update", `{"state":"offline"}`)

	// Cool readings in the background, so throughput is steady.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				publish(fmt.Sprintf("factory/m%d/data", i%3), fmt.Sprintf(`{"device":"m%d","temperature":%d}`, i%3, 18+i%9))
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 900))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if _, err := chromedp.Run(bctx, chromedp.Navigate(ts.http.URL+"/")); err != nil {
		t.Fatalf("starting chromium and opening the dashboard: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, html)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}

	// 401 -> token prompt; the token is kept in localStorage.
	poll("the token prompt", `document.querySelector('#tokenDialog').open === true`)
	if _, err := chromedp.Run(ctx, chromedp.SendKeys("#tokenInput", readToken, chromedp.NodeVisible)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Click("#tokenSave", chromedp.NodeVisible)); err != nil {
		t.Fatal(err)
	}
	poll("the pipeline row", `!!document.querySelector('tr[data-pipeline="plant/hot"]')`)
	if got := eval(`localStorage.getItem('eddy.token')`); got != readToken {
		t.Fatalf("token not kept: %q", got)
	}
	if got := eval(`document.querySelector('#role').textContent`); got != "read" {
		t.Fatalf("role shown %q", got)
	}

	// Counters rise.
	inCell := `Number(document.querySelector('tr[data-pipeline="plant/hot"] td[data-k="in"]').textContent.replace(/k$/, 'e3'))`
	poll("records to arrive", inCell+` > 0`)
	first := eval(`String(` + inCell + `)`)
	poll("the counter to rise above "+first, inCell+` > `+first)
	poll("no alert yet", `document.querySelector('[data-k="alerts-firing"]').textContent === '0'`)

	// An alert appears.
	publish("factory/m7/data", `{"device":"m7","temperature":48.5}`)
	poll("the alert to appear", `document.querySelector('[data-k="alerts-firing"]').textContent === '1'`)
	poll("the alert message", `document.body.innerText.includes('m7 is hot: 48.5')`)

	shots := artifactDir(t)
	docs := os.Getenv("EDDY_DOCS_SCREENSHOT") != ""
	if docs {
		// Let the sparklines fill for the README picture.
		poll("sparklines", `document.querySelectorAll('svg.spark path.line').length >= 2`)
		time.Sleep(20 * time.Second)
	}
	overview := screenshot(t, ctx, filepath.Join(shots, "dashboard-overview.png"))
	if docs {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "dashboard.png"), overview, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The pipeline page: the step graph, live counters and the tap.
	if _, err := chromedp.Run(ctx, chromedp.Navigate(ts.http.URL+"/#/pipelines/plant/hot")); err != nil {
		t.Fatal(err)
	}
	poll("the step graph", `!!document.querySelector('.node[data-step="filter-0"]') && !!document.querySelector('.node[data-step="alert-1"]')`)
	poll("the YAML", `document.querySelector('pre').textContent.includes('temperature > 30')`)
	stepIn := `Number(document.querySelector('.node[data-step="filter-0"] [data-k="in"]').textContent.replace(/k$/, 'e3'))`
	before := eval(`String(` + stepIn + `)`)
	poll("the step counter to rise", stepIn+` > `+before)
	// The tap attaches when the page has loaded the pipeline; publish
	// until an output shows up (the alert fires once per new key).
	for i := 0; ; i++ {
		publish("factory/x/data", fmt.Sprintf(`{"device":"hot-%d","temperature":55}`, i))
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#tap').innerText.includes('"state":"firing"')`))
		if err != nil {
			t.Fatal(err)
		}
		if v {
			break
		}
		if i > 100 {
			t.Fatalf("no tap output on the pipeline page: %s", eval(`document.querySelector('#tap').innerText`))
		}
		time.Sleep(100 * time.Millisecond)
	}
	screenshot(t, ctx, filepath.Join(shots, "dashboard-pipeline.png"))

	// Devices page: desired vs reported.
	if _, err := chromedp.Run(ctx, chromedp.Navigate(ts.http.URL+"/#/devices")); err != nil {
		t.Fatal(err)
	}
	poll("the devices", `document.body.innerText.includes('default/thermo-1') && document.body.innerText.includes('setpoint')`)
	screenshot(t, ctx, filepath.Join(shots, "dashboard-devices.png"))
	t.Logf("screenshots in %s", shots)
}

// screenshot saves a full-page PNG and fails when it looks blank.
func screenshot(t *testing.T, ctx context.Context, path string) []byte {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", path, err)
	}
	if n := distinctColours(img); n < 32 {
		t.Fatalf("screenshot %s looks blank: %d distinct colours", path, n)
	}
	return b
}

func distinctColours(img image.Image) int {
	seen := map[uint32]bool{}
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y += 2 {
		for x := bd.Min.X; x < bd.Max.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			seen[(r>>8)<<16|(g>>8)<<8|b>>8] = true
		}
	}
	return len(seen)
}
