// Package containerdtest starts a real, private containerd for a test: its
// own config, root, state and socket under a temporary directory, the CRI
// plugin configured as this kind of machine needs it (runc v2 runtime,
// restrict_oom_score_adj, overlayfs, no CNI: host network), and the
// busybox and pause images that scripts/busybox-image.sh builds from
// Debian's busybox-static, imported into the k8s.io namespace. The
// instance is stopped and its files removed when the test ends. Only tests
// import it.
//
// A machine without containerd, runc, ctr or busybox-static fails the test
// under EDDY_REQUIRE_TOOLS (make test, CI) and skips it otherwise
// (internal/testtools); scripts/deps.sh installs them.
package containerdtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/connectors/cri"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/testtools"
)

// The images every instance has.
const (
	// Busybox is busybox-static with one symlink per applet; Cmd ["sh"].
	Busybox = "localhost/eddy/busybox:1.35"
	// Pause is the same layer with Cmd ["sleep", "2147483647"]; the
	// instance's sandbox image.
	Pause = "localhost/eddy/pause:1.35"
)

// Containerd is a running private containerd.
type Containerd struct {
	// Dir holds config, root, state, socket and log.
	Dir string
	// Endpoint is the CRI (and events) endpoint, unix://Dir/c.sock.
	Endpoint string
	cmd      *exec.Cmd
	bin      string
	t        testing.TB
}

// start runs containerd on c.Dir and waits until its CRI answers.
func (c *Containerd) start() {
	c.t.Helper()
	logf, err := os.OpenFile(filepath.Join(c.Dir, "containerd.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	c.cmd = exec.Command(c.bin, "--config", filepath.Join(c.Dir, "config.toml"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("starting containerd: %v", err)
	}
	rt, err := cri.Dial(c.Endpoint)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rt.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := rt.Version(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("containerd did not come up in 30s: %v\n%s", err, c.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts containerd again after Kill, on the same state.
func (c *Containerd) Restart() { c.start() }

const config = `version = 2
root = "{{dir}}/root"
state = "{{dir}}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{{dir}}/c.sock"
[ttrpc]
  address = "{{dir}}/c.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "` + Pause + `"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{dir}}/cni/bin"
    conf_dir = "{{dir}}/cni/conf"
`

// Start starts a private containerd with the images imported and returns
// once its CRI answers.
func Start(t testing.TB) *Containerd {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("containers need Linux")
	}
	bin := testtools.Tool(t, "containerd", "apt-get install containerd runc (scripts/deps.sh)")
	testtools.Tool(t, "runc", "apt-get install runc (scripts/deps.sh)")
	ctr := testtools.Tool(t, "ctr", "apt-get install containerd (scripts/deps.sh)")
	testtools.Tool(t, "containerd-shim-runc-v2", "apt-get install containerd (scripts/deps.sh)")
	if os.Geteuid() != 0 {
		testtools.Missing(t, "root", "containerd and runc need root to run containers; run the tests as root (CI does)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testtools.Missing(t, "busybox-static", "apt-get install busybox-static (scripts/deps.sh)")
	}
	image := buildImage(t)

	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "eddy-ctd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Dir: dir, Endpoint: "unix://" + filepath.Join(dir, "c.sock"), t: t}
	cfg := strings.ReplaceAll(config, "{{dir}}", dir)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log")) // created here, appended to by start
	if err != nil {
		t.Fatal(err)
	}
	logf.Close()
	c.bin = bin
	c.start()
	t.Cleanup(c.stop)
	out, err := exec.Command(ctr, "-a", filepath.Join(dir, "c.sock"), "-n", "k8s.io", "images", "import", image).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	return c
}

// Log returns containerd's log so far.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	return string(b)
}

// Runtime returns a CRI client of this containerd, closed with the test.
func (c *Containerd) Runtime(t testing.TB) *cri.Runtime {
	t.Helper()
	rt, err := cri.Dial(c.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// WaitPodsGone waits until the runtime lists no pod sandbox whose labels
// include labels (no pod at all when labels is nil), and fails the test
// naming what it waited for if some remain after mqtttest.WaitTimeout.
func (c *Containerd) WaitPodsGone(t testing.TB, what string, labels map[string]string) {
	t.Helper()
	rt := c.Runtime(t)
	mqtttest.WaitFor(t, what, func() bool {
		pods, err := rt.Pods(context.Background(), labels)
		return err == nil && len(pods) == 0
	})
}

// Kill stops containerd with SIGKILL (its containers keep running in their
// shims) and returns; Restart starts it again on the same state.
func (c *Containerd) Kill() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// stop removes every pod (so no shim or container outlives the test),
// stops containerd, unmounts what it left and removes the directory.
func (c *Containerd) stop() {
	if c.cmd.ProcessState == nil {
		rt, err := cri.Dial(c.Endpoint)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if pods, err := rt.Pods(ctx, nil); err == nil {
				for _, p := range pods {
					if err := rt.RemovePod(ctx, p.ID); err != nil {
						c.t.Logf("containerdtest: removing pod %s: %v", p.Name, err)
					}
				}
			}
			cancel()
			rt.Close()
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	}
	// Shims of pods that could not be removed: kill them by their pid files.
	_ = filepath.Walk(filepath.Join(c.Dir, "state"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && (info.Name() == "shim.pid" || info.Name() == "init.pid") {
			if b, err := os.ReadFile(p); err == nil {
				var pid int
				if _, err := fmt.Sscan(string(bytes.TrimSpace(b)), &pid); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		return nil
	})
	unmountUnder(c.Dir)
	if err := os.RemoveAll(c.Dir); err != nil {
		c.t.Logf("containerdtest: removing %s: %v", c.Dir, err)
	}
}

func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			mounts = append(mounts, f[1])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

// buildImage runs scripts/busybox-image.sh once per test binary.
func buildImage(t testing.TB) string {
	t.Helper()
	imageMu.Lock()
	defer imageMu.Unlock()
	if imagePath != "" {
		return imagePath
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The archive is reproducible from the same busybox binary, so one
	// file per user and binary version is shared by every test run; it is
	// built under a temporary name and renamed, so concurrent test
	// binaries never see half of it.
	bb, err := os.Stat("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("eddy-busybox-image-%d-%d-%d.tar", os.Getuid(), bb.Size(), bb.ModTime().Unix()))
	if _, err := os.Stat(path); err == nil {
		imagePath = path
		return imagePath
	}
	f, err := os.CreateTemp(filepath.Dir(path), "eddy-busybox-*.tar.tmp")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer os.Remove(f.Name())
	out, err := exec.Command(filepath.Join(root, "scripts", "busybox-image.sh"), f.Name()).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/busybox-image.sh: %v\n%s", err, out)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
	imagePath = path
	return imagePath
}

// imagePath is the archive this test binary uses.
var (
	imageMu   sync.Mutex
	imagePath string
)

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the test's directory")
		}
		dir = parent
	}
}
