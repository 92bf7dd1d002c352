package beam

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	jobpb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/jobmanagement_v1"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Runner names Execute takes besides a portable job endpoint (HOST:PORT).
const (
	// RunnerDirect is Beam's in-process batch runner.
	RunnerDirect = "direct"
	// RunnerPrism is Beam's in-process portable runner, its job server on
	// 127.0.0.1 (PrismLoopback).
	RunnerPrism = "prism"
)

// cancelWait bounds how long Execute waits, once its context is done, for
// the job service to report the cancelled job stopped.
const cancelWait = 30 * time.Second

var (
	// execMu makes Execute run one job at a time: Beam's job options
	// (endpoint, job name, environment) are process-wide flags.
	execMu sync.Mutex
	// jobSeq numbers the jobs of this process, for their names.
	jobSeq atomic.Int64
	// prismJobs is this process's prism job server, started once.
	prismJobs struct {
		once     sync.Once
		endpoint string
		client   jobpb.JobServiceClient
		err      error
	}
)

// Execute runs p on runner: RunnerDirect, RunnerPrism or the HOST:PORT of a
// portable job endpoint (Flink, Spark, Dataflow's job service; workers run
// in this process, Beam's LOOPBACK environment, unless Beam's
// --environment_type says otherwise). It returns when the job ends, or when
// ctx is done: then the job is cancelled at its job service and Execute
// waits (up to 30 s) for the service to report it stopped. Beam's own
// Execute functions only stop waiting: the job, a live one in particular,
// went on running in the job service (prism kept scheduling it, burning
// CPU, for as long as the process lived) with its workers gone.
//
// Jobs run one at a time per process (Beam's job options are process-wide
// flags). RunnerPrism needs a build with the loopback patch
// (PrismLoopback); without it Execute refuses.
func Execute(ctx context.Context, runner string, p *beam.Pipeline) error {
	execMu.Lock()
	defer execMu.Unlock()
	if runner == RunnerDirect {
		_, err := direct.Execute(ctx, p)
		return err
	}
	var client jobpb.JobServiceClient
	endpoint := runner
	if runner == RunnerPrism {
		if !PrismLoopback() {
			return errors.New("prism: this binary was built without third_party/beam-prism's patch, so prism's job server would listen on every interface without authentication; build with make (make build-beam, make test) or see third_party/beam-prism/README.md")
		}
		if err := startPrism(); err != nil {
			return err
		}
		endpoint, client = prismJobs.endpoint, prismJobs.client
	}
	name := fmt.Sprintf("eddy-%d-%d", os.Getpid(), jobSeq.Add(1))
	*jobopts.Endpoint = endpoint
	*jobopts.JobName = name
	if *jobopts.EnvironmentType == "" {
		*jobopts.EnvironmentType = "LOOPBACK"
	}
	// The job runs under a context that ctx does not cancel: cancelling it
	// would only stop the waiting and the in-process workers.
	jobCtx, stopJob := context.WithCancel(context.WithoutCancel(ctx))
	defer stopJob()
	done := make(chan error, 1)
	go func() {
		_, err := universal.Execute(jobCtx, p)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	if client == nil {
		conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err == nil {
			defer conn.Close()
			client = jobpb.NewJobServiceClient(conn)
		}
	}
	// Cancel the job by name until the service reports it stopped (it may
	// not be submitted yet), at most cancelWait. A service that cannot be
	// reached for a second (a wrong endpoint: the job was never submitted)
	// is not waited for.
	deadline := time.Now().Add(cancelWait)
	reached := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) && client != nil {
		if err := cancelJobs(client, name); err == nil {
			reached = time.Now()
		} else if time.Since(reached) > time.Second {
			break
		}
		select {
		case <-done:
			return ctx.Err()
		case <-tick.C:
		}
	}
	stopJob()
	<-done
	if time.Now().Before(deadline) {
		return fmt.Errorf("%w (the job service at %s could not be reached to cancel job %s)", ctx.Err(), endpoint, name)
	}
	return fmt.Errorf("%w (the job service at %s did not report job %s stopped within %v)", ctx.Err(), endpoint, name, cancelWait)
}

// cancelJobs asks the job service to cancel the running jobs named name.
// It fails when the service cannot be asked.
func cancelJobs(client jobpb.JobServiceClient, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	jobs, err := client.GetJobs(ctx, &jobpb.GetJobsRequest{})
	if err != nil {
		return err
	}
	for _, j := range jobs.GetJobInfo() {
		if j.GetJobName() != name {
			continue
		}
		switch j.GetState() {
		case jobpb.JobState_CANCELLED, jobpb.JobState_DONE, jobpb.JobState_DRAINED, jobpb.JobState_UPDATED, jobpb.JobState_FAILED:
			continue
		}
		client.Cancel(ctx, &jobpb.CancelJobRequest{JobId: j.GetJobId()})
	}
	return nil
}

// PrismEndpoint starts this process's prism job server, which Execute
// runs RunnerPrism jobs on, if it has not started yet, and returns its
// endpoint (localhost:PORT; it listens on 127.0.0.1 when PrismLoopback).
func PrismEndpoint() (string, error) {
	if err := startPrism(); err != nil {
		return "", err
	}
	return prismJobs.endpoint, nil
}

// startPrism starts this process's prism job server once, on a free
// loopback port. prism takes a port, not a listener, so a free port is
// picked and freed first; if another process takes it meanwhile, prism
// panics while listening, and another port is tried.
func startPrism() error {
	prismJobs.once.Do(func() {
		for try := 0; try < 5; try++ {
			port, err := freePort()
			if err != nil {
				prismJobs.err = err
				return
			}
			client, err := createPrism(port)
			if err == nil {
				prismJobs.endpoint, prismJobs.client, prismJobs.err = "localhost:"+strconv.Itoa(port), client, nil
				return
			}
			prismJobs.err = err
		}
	})
	return prismJobs.err
}

func createPrism(port int) (client jobpb.JobServiceClient, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("prism: starting the job server on port %d: %v", port, r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return prism.CreateJobServer(ctx, prism.Options{Port: port})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("prism: finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
