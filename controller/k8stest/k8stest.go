// Package k8stest starts a real kube-apiserver and etcd (controller-runtime's
// envtest, with binaries built from the Go module proxy by
// scripts/k8s-bins.sh) with Eddy's CRDs installed, and runs kubectl against
// it. Only tests and benchmarks import it.
package k8stest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/eddy-edge/eddy/internal/testtools"
)

// K8sVersion is the Kubernetes version scripts/k8s-bins.sh builds.
const K8sVersion = "v1.32.13"

// Assets returns the directory holding kube-apiserver, etcd and kubectl:
// $KUBEBUILDER_ASSETS, else the cache scripts/k8s-bins.sh fills. It fails
// (or skips, outside `make test`) when they are missing.
func Assets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		cache := os.Getenv("EDDY_CACHE")
		if cache == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				testtools.Missing(t, "kube-apiserver, etcd, kubectl", "set KUBEBUILDER_ASSETS or run scripts/k8s-bins.sh")
			}
			cache = filepath.Join(base, "eddy")
		}
		dir = filepath.Join(cache, "k8s-"+K8sVersion, "bin")
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			testtools.Missing(t, b+" in "+dir, "run scripts/k8s-bins.sh (builds them from the Go module proxy; `make test` does)")
		}
	}
	return dir
}

// RepoDir returns the repository root (found from this file's path).
func RepoDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// CRDDir is deploy/crds: eddy/ holds Eddy's CRDs, kubeedge/ the
// KubeEdge-compatible ones.
func CRDDir() string { return filepath.Join(RepoDir(), "deploy", "crds") }

// CRDFile is one generated CRD file: EddyCRD("eddy.dev_pipelines.yaml")...
func CRDFile(group, file string) string { return filepath.Join(CRDDir(), group, file) }

var logOnce sync.Once

// Cluster is a running API server.
type Cluster struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	env    *envtest.Environment
	assets string
	kubecf string
}

// Options of Start.
type Options struct {
	// CRDDirs (directories or files) are installed before Start
	// returns; nil means all of deploy/crds, an empty non-nil slice
	// installs none.
	CRDDirs []string
	// CRDs are installed too.
	CRDs []*apiextensionsv1.CustomResourceDefinition
}

// Start runs etcd and kube-apiserver. Stop it with Stop.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	assets := Assets(t)
	// controller-runtime's process-wide logger; envtest logs through it.
	logOnce.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	dirs := o.CRDDirs
	if dirs == nil {
		dirs = []string{filepath.Join(CRDDir(), "eddy"), filepath.Join(CRDDir(), "kubeedge")}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     dirs,
		CRDs:                  o.CRDs,
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd from %s: %v", assets, err)
	}
	c := &Cluster{Config: cfg, env: env, assets: assets}
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "kubectl", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		c.Stop()
		t.Fatalf("add kubectl user: %v", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		c.Stop()
		t.Fatalf("kubeconfig: %v", err)
	}
	f, err := os.CreateTemp("", "eddy-kubeconfig-*")
	if err != nil {
		c.Stop()
		t.Fatal(err)
	}
	if _, err := f.Write(kc); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c.kubecf = f.Name()
	return c
}

// Stop stops the API server and etcd.
func (c *Cluster) Stop() {
	if c.kubecf != "" {
		os.Remove(c.kubecf)
	}
	_ = c.env.Stop()
}

// Kubeconfig is the path of a kubeconfig file for this cluster.
func (c *Cluster) Kubeconfig() string { return c.kubecf }

// Kubectl runs the real kubectl against the cluster with stdin and returns
// its combined output.
func (c *Cluster) Kubectl(stdin string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.assets, "kubectl"), append([]string{"--kubeconfig", c.kubecf}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// MustKubectl is Kubectl failing the test on error.
func (c *Cluster) MustKubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, err := c.Kubectl(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
