// Package cri talks to the node's container runtime through the Kubernetes
// Container Runtime Interface (k8s.io/cri-api over a unix socket, as the
// kubelet and KubeEdge's edged do), and to containerd's events service for
// the container lifecycle that CRI v1.6 runtimes do not stream.
//
// It owns the wire: dialing the socket, building pod-sandbox and container
// configs, waiting for exits, finding containers by label, and turning
// runtime events into [LifecycleEvent]s with pod and container metadata. It
// does not decide whether an action may run (runner/actions does), keeps no
// state across restarts (the runtime's labels are the state) and writes
// nothing to the log (the runner does).
package cri

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultEndpoint is containerd's CRI socket on a standard install.
const DefaultEndpoint = "unix:///run/containerd/containerd.sock"

// Runtime is a CRI client. It is safe for concurrent use. The connection is
// made lazily and re-made after the runtime restarts, so a Runtime can be
// created while the runtime is down.
type Runtime struct {
	endpoint string
	conn     *grpc.ClientConn
	rt       runtimeapi.RuntimeServiceClient
	img      runtimeapi.ImageServiceClient
}

// Dial returns a client of the CRI runtime at endpoint: "unix:///path",
// or a plain socket path. Empty means DefaultEndpoint. It does not wait for
// the runtime to be up.
func Dial(endpoint string) (*Runtime, error) {
	target, err := grpcTarget(endpoint)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("CRI endpoint %q: %w", endpoint, err)
	}
	return &Runtime{endpoint: target, conn: conn,
		rt: runtimeapi.NewRuntimeServiceClient(conn), img: runtimeapi.NewImageServiceClient(conn)}, nil
}

// grpcTarget turns a socket path or unix:// URL into a gRPC target.
func grpcTarget(endpoint string) (string, error) {
	switch {
	case endpoint == "":
		return DefaultEndpoint, nil
	case strings.HasPrefix(endpoint, "unix://"):
		return endpoint, nil
	case strings.HasPrefix(endpoint, "/"):
		return "unix://" + endpoint, nil
	default:
		return "", fmt.Errorf("CRI endpoint %q: use a unix socket, e.g. unix:///run/containerd/containerd.sock", endpoint)
	}
}

// SocketPath returns the filesystem path of a unix endpoint.
func SocketPath(endpoint string) string {
	t, err := grpcTarget(endpoint)
	if err != nil {
		return endpoint
	}
	return strings.TrimPrefix(t, "unix://")
}

// Endpoint returns the gRPC target this client dials.
func (r *Runtime) Endpoint() string { return r.endpoint }

// Close closes the connection.
func (r *Runtime) Close() error { return r.conn.Close() }

// Version asks the runtime for its name and version; it is how callers
// check that the runtime is reachable.
func (r *Runtime) Version(ctx context.Context) (string, error) {
	v, err := r.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", r.wrap("version", err)
	}
	return v.RuntimeName + " " + v.RuntimeVersion, nil
}

// ErrUnavailable marks errors where the runtime could not be reached (the
// socket is missing, the runtime is restarting). They are worth retrying.
var ErrUnavailable = errors.New("container runtime unavailable")

// ErrImageMissing is returned by Run when the image is not in the
// runtime's store. Eddy never pulls: edges are often offline.
var ErrImageMissing = errors.New("image not present in the container runtime")

// IsUnavailable reports whether err means the runtime was not reachable.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsNotFound reports whether the runtime answered that the object does not
// exist.
func IsNotFound(err error) bool {
	return status.Code(errors.Unwrap(err)) == codes.NotFound || status.Code(err) == codes.NotFound ||
		(err != nil && strings.Contains(err.Error(), "not found"))
}

type unavailableError struct {
	op       string
	endpoint string
	err      error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("CRI %s: the container runtime at %s is not reachable (%v); is containerd running?", e.op, e.endpoint, e.err)
}
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

func (r *Runtime) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.Unavailable:
		return &unavailableError{op: op, endpoint: r.endpoint, err: err}
	case codes.DeadlineExceeded, codes.Canceled:
		return fmt.Errorf("CRI %s: %w", op, err)
	}
	return fmt.Errorf("CRI %s: %s", op, status.Convert(err).Message())
}

// RunSpec describes one container to run in a pod sandbox of its own.
type RunSpec struct {
	// Name is the pod's name (a DNS label), and the container's unless
	// ContainerName is set.
	Name string
	// ContainerName names the container in its pod. Default Name.
	ContainerName string
	// Namespace is the pod's namespace (shown by crictl and the lifecycle
	// stream). Default "eddy-actions".
	Namespace string
	// UID makes the sandbox unique. The runtime refuses a second sandbox
	// with the same name, namespace, UID and attempt, which is what makes
	// a retried run of the same action episode a no-op.
	UID string
	// Labels go on both the sandbox and the container.
	Labels map[string]string
	// Image is the image reference; it must already be in the runtime.
	Image string
	// Command replaces the image's entrypoint; Args its cmd.
	Command, Args []string
	// Env is the environment, in order.
	Env []EnvVar
	// HostNetwork runs the pod in the node's network namespace. A pod
	// network needs a CNI plugin configured in the runtime.
	HostNetwork bool
	// CPUMillis limits CPU (1000 = one core); 0 is unlimited.
	CPUMillis int64
	// MemoryBytes limits memory; 0 is unlimited.
	MemoryBytes int64
	// LogDir is where the runtime writes the container's output
	// (LogDir/<Name>.log, CRI log format). Empty: no log.
	LogDir string
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Launched identifies a started container.
type Launched struct {
	// SandboxID and ContainerID are the runtime's ids.
	SandboxID, ContainerID string
	// LogPath is the container's log file, if any.
	LogPath string
}

// Run creates a pod sandbox and one container in it and starts it. On an
// error after the sandbox was made, the sandbox id is returned with the
// error so the caller can remove it. Run never pulls images: a missing one
// is ErrImageMissing with the command that imports it.
func (r *Runtime) Run(ctx context.Context, s RunSpec) (Launched, error) {
	if s.Namespace == "" {
		s.Namespace = "eddy-actions"
	}
	if err := r.HasImage(ctx, s.Image); err != nil {
		return Launched{}, err
	}
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: s.Name, Namespace: s.Namespace, Uid: s.UID},
		Hostname:     s.Name,
		LogDirectory: s.LogDir,
		Labels:       s.Labels,
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD},
		}},
	}
	if s.HostNetwork {
		sbCfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		sbCfg.Hostname = "" // the node's; runc cannot set one without a UTS namespace

	}
	if s.LogDir != "" {
		if err := os.MkdirAll(s.LogDir, 0o755); err != nil {
			return Launched{}, fmt.Errorf("container log directory: %w", err)
		}
	}
	sb, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		err = r.wrap("RunPodSandbox", err)
		if !s.HostNetwork && strings.Contains(err.Error(), "cni") {
			err = fmt.Errorf("%w (a pod network needs a CNI plugin configured in the runtime; set hostNetwork: true to use the node's network)", err)
		}
		return Launched{}, err
	}
	out := Launched{SandboxID: sb.PodSandboxId}
	env := make([]*runtimeapi.KeyValue, len(s.Env))
	for i, e := range s.Env {
		env[i] = &runtimeapi.KeyValue{Key: e.Name, Value: e.Value}
	}
	res := &runtimeapi.LinuxContainerResources{}
	if s.CPUMillis > 0 {
		res.CpuPeriod = 100000
		res.CpuQuota = s.CPUMillis * 100
	}
	if s.MemoryBytes > 0 {
		res.MemoryLimitInBytes = s.MemoryBytes
	}
	cCfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: cmp.Or(s.ContainerName, s.Name)},
		Image:    &runtimeapi.ImageSpec{Image: s.Image},
		Command:  s.Command,
		Args:     s.Args,
		Envs:     env,
		Labels:   s.Labels,
		Linux:    &runtimeapi.LinuxContainerConfig{Resources: res},
	}
	if s.LogDir != "" {
		cCfg.LogPath = s.Name + ".log"
		out.LogPath = filepath.Join(s.LogDir, cCfg.LogPath)
	}
	c, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: cCfg, SandboxConfig: sbCfg})
	if err != nil {
		return out, r.wrap("CreateContainer", err)
	}
	out.ContainerID = c.ContainerId
	if _, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return out, r.wrap("StartContainer", err)
	}
	return out, nil
}

// HasImage returns nil when image is in the runtime's store, else an
// ErrImageMissing that says how to import it.
func (r *Runtime) HasImage(ctx context.Context, image string) error {
	st, err := r.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		return r.wrap("ImageStatus", err)
	}
	if st.Image == nil {
		return fmt.Errorf("%w: %q; Eddy does not pull images (edges are often offline): import it with `ctr -n k8s.io images import IMAGE.tar` (see docs/actions.md)", ErrImageMissing, image)
	}
	return nil
}

// StartExisting starts a container that was created but not started (a
// run interrupted by a crash).
func (r *Runtime) StartExisting(ctx context.Context, containerID string) error {
	_, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: containerID})
	return r.wrap("StartContainer", err)
}

// ContainerState is a container's state as the runtime reports it.
type ContainerState struct {
	ID, SandboxID string
	// Name is the container's name, Attempt its restart count.
	Name    string
	Attempt uint32
	Image   string
	// State is created, running, exited or unknown.
	State string
	// ExitCode and Reason (e.g. OOMKilled, Error, Completed) once exited.
	ExitCode int32
	Reason   string
	// CreatedAt, StartedAt, FinishedAt in unix ns (0 when not yet).
	CreatedAt, StartedAt, FinishedAt int64
	Labels                           map[string]string
	LogPath                          string
}

// Container states.
const (
	StateCreated = "created"
	StateRunning = "running"
	StateExited  = "exited"
	StateUnknown = "unknown"
)

func stateName(s runtimeapi.ContainerState) string {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return StateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return StateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return StateExited
	}
	return StateUnknown
}

// Container returns a container's state.
func (r *Runtime) Container(ctx context.Context, id string) (ContainerState, error) {
	st, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return ContainerState{}, r.wrap("ContainerStatus", err)
	}
	s := st.Status
	cs := ContainerState{ID: s.Id, State: stateName(s.State), ExitCode: s.ExitCode, Reason: s.Reason,
		CreatedAt: s.CreatedAt, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt, Labels: s.Labels, LogPath: s.LogPath}
	if s.Metadata != nil {
		cs.Name, cs.Attempt = s.Metadata.Name, s.Metadata.Attempt
	}
	if s.Image != nil {
		cs.Image = s.Image.Image
	}
	return cs, nil
}

// Wait polls a container until it has exited, ctx ends or the runtime
// fails; it returns the final state.
func (r *Runtime) Wait(ctx context.Context, id string) (ContainerState, error) {
	delay := 10 * time.Millisecond
	for {
		st, err := r.Container(ctx, id)
		if err != nil {
			return st, err
		}
		if st.State == StateExited {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

// StopContainer stops a container: SIGTERM, then SIGKILL after grace.
func (r *Runtime) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	_, err := r.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: int64(grace / time.Second)})
	return r.wrap("StopContainer", err)
}

// RemovePod stops and removes a pod sandbox and its containers.
func (r *Runtime) RemovePod(ctx context.Context, sandboxID string) error {
	if _, err := r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandboxID}); err != nil && !IsNotFound(r.wrap("", err)) {
		return r.wrap("StopPodSandbox", err)
	}
	_, err := r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandboxID})
	if err != nil && IsNotFound(r.wrap("", err)) {
		return nil
	}
	return r.wrap("RemovePodSandbox", err)
}

// Pod is a pod sandbox as the runtime lists it.
type Pod struct {
	ID, Name, Namespace, UID string
	Attempt                  uint32
	// Ready is false once the sandbox was stopped.
	Ready     bool
	Labels    map[string]string
	CreatedAt int64
}

// Pods lists the pod sandboxes whose labels include every label in sel.
func (r *Runtime) Pods(ctx context.Context, sel map[string]string) ([]Pod, error) {
	res, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		return nil, r.wrap("ListPodSandbox", err)
	}
	out := make([]Pod, 0, len(res.Items))
	for _, p := range res.Items {
		pod := Pod{ID: p.Id, Ready: p.State == runtimeapi.PodSandboxState_SANDBOX_READY, Labels: p.Labels, CreatedAt: p.CreatedAt}
		if p.Metadata != nil {
			pod.Name, pod.Namespace, pod.UID, pod.Attempt = p.Metadata.Name, p.Metadata.Namespace, p.Metadata.Uid, p.Metadata.Attempt
		}
		out = append(out, pod)
	}
	return out, nil
}

// Pod returns one pod sandbox.
func (r *Runtime) Pod(ctx context.Context, id string) (Pod, error) {
	res, err := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return Pod{}, r.wrap("PodSandboxStatus", err)
	}
	p := res.Status
	pod := Pod{ID: p.Id, Ready: p.State == runtimeapi.PodSandboxState_SANDBOX_READY, Labels: p.Labels, CreatedAt: p.CreatedAt}
	if p.Metadata != nil {
		pod.Name, pod.Namespace, pod.UID, pod.Attempt = p.Metadata.Name, p.Metadata.Namespace, p.Metadata.Uid, p.Metadata.Attempt
	}
	return pod, nil
}

// ContainerRef is a container as the runtime lists it.
type ContainerRef struct {
	ID, SandboxID, Name, Image string
	Attempt                    uint32
	State                      string
	Labels                     map[string]string
}

// ContainerRef returns the listing of one container (which, unlike its
// status, names its sandbox).
func (r *Runtime) ContainerRef(ctx context.Context, id string) (ContainerRef, error) {
	res, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: id}})
	if err != nil {
		return ContainerRef{}, r.wrap("ListContainers", err)
	}
	for _, c := range res.Containers {
		if c.Id == id {
			return toRef(c), nil
		}
	}
	return ContainerRef{}, fmt.Errorf("container %s: not found", id)
}

func toRef(c *runtimeapi.Container) ContainerRef {
	ref := ContainerRef{ID: c.Id, SandboxID: c.PodSandboxId, State: stateName(c.State), Labels: c.Labels}
	if c.Metadata != nil {
		ref.Name, ref.Attempt = c.Metadata.Name, c.Metadata.Attempt
	}
	if c.Image != nil {
		ref.Image = c.Image.Image
	}
	return ref
}

// Containers lists containers, optionally of one sandbox, whose labels
// include every label in sel.
func (r *Runtime) Containers(ctx context.Context, sandboxID string, sel map[string]string) ([]ContainerRef, error) {
	res, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sandboxID, LabelSelector: sel}})
	if err != nil {
		return nil, r.wrap("ListContainers", err)
	}
	out := make([]ContainerRef, 0, len(res.Containers))
	for _, c := range res.Containers {
		out = append(out, toRef(c))
	}
	return out, nil
}

// Restart stops a container (SIGTERM, SIGKILL after grace) and replaces it
// with a new one made from the same configuration in the same pod, with
// its attempt (restart count) incremented, as the kubelet restarts a
// container. The configuration comes from the runtime's verbose status
// (containerd keeps the CRI config there).
func (r *Runtime) Restart(ctx context.Context, id string, grace time.Duration) error {
	st, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return r.wrap("ContainerStatus", err)
	}
	var info struct {
		SandboxID string                      `json:"sandboxID"`
		Config    *runtimeapi.ContainerConfig `json:"config"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Config == nil || info.SandboxID == "" {
		return fmt.Errorf("restart %s: the runtime does not report the container's configuration (verbose status), so it cannot be re-created", id)
	}
	sb, err := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: info.SandboxID, Verbose: true})
	if err != nil {
		return r.wrap("PodSandboxStatus", err)
	}
	var sbInfo struct {
		Config *runtimeapi.PodSandboxConfig `json:"config"`
	}
	if err := json.Unmarshal([]byte(sb.Info["info"]), &sbInfo); err != nil || sbInfo.Config == nil {
		return fmt.Errorf("restart %s: the runtime does not report the pod's configuration", id)
	}
	if err := r.StopContainer(ctx, id, grace); err != nil {
		return err
	}
	cfg := info.Config
	if cfg.Metadata == nil {
		cfg.Metadata = &runtimeapi.ContainerMetadata{Name: st.Status.Metadata.GetName()}
	}
	cfg.Metadata.Attempt = st.Status.Metadata.GetAttempt() + 1
	if cfg.LogPath != "" {
		ext := filepath.Ext(cfg.LogPath)
		base := strings.TrimSuffix(cfg.LogPath, ext)
		if i := strings.LastIndexByte(base, '.'); i > 0 && strings.Trim(base[i+1:], "0123456789") == "" {
			base = base[:i]
		}
		cfg.LogPath = fmt.Sprintf("%s.%d%s", base, cfg.Metadata.Attempt, ext)
	}
	c, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: info.SandboxID, Config: cfg, SandboxConfig: sbInfo.Config})
	if err != nil {
		return r.wrap("CreateContainer", err)
	}
	if _, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return r.wrap("StartContainer", err)
	}
	if _, err := r.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		return r.wrap("RemoveContainer", err)
	}
	return nil
}
