// Package e2etest is the shared support for end-to-end tests that run
// Eddy's binaries (and outside programs such as mosquitto) as real
// processes: building a binary, starting a program with its output kept for
// the test, waiting until it logs a line, stopping it with a signal, running
// a command to completion, and reading the JSON Lines files that file sinks
// write.
//
// It owns the lifecycle of the processes it starts: each one is killed when
// its test ends if the test has not stopped it, and its output is printed
// when the test failed. It does not know Eddy's flags or log lines: the
// tests say what to start and what to wait for.
package e2etest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/testtools"
)

// StopTimeout bounds how long Proc.Stop waits for the process to exit after
// its signal. It bounds how long a broken test hangs; a passing test does
// not wait for it.
const StopTimeout = 20 * time.Second

// Compile builds the main package pkg (as `go build` takes it, relative to
// the test's directory) into dir/name and returns the binary's path. Its
// error carries the compiler's output. It is for TestMain, which has no
// testing.TB; a test calls Build.
func Compile(dir, name, pkg string) (string, error) {
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// Build is Compile for a test: a failed build fails the test.
func Build(t testing.TB, dir, name, pkg string) string {
	t.Helper()
	bin, err := Compile(dir, name, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Proc is a program started by Start. Its standard output and error go to
// one buffer the test reads with Logs.
type Proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	logs testtools.Buffer
	done chan struct{} // closed once the process has exited
	err  error         // cmd.Wait's result, set before done is closed
}

// Start starts cmd (its Path, Args, Dir and Env as the caller set them; its
// Stdout and Stderr are taken over) and returns it running. When the test
// ends the process is killed if it still runs, and its output is logged if
// the test failed.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{t: t, name: procName(cmd.Args), cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.logs, &p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.Kill()
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", p.name, p.Logs())
		}
	})
	return p
}

// procName names a process in messages: the program and, when it is a
// subcommand rather than a flag, its first argument ("eddy edge").
func procName(args []string) string {
	name := filepath.Base(args[0])
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		name += " " + args[1]
	}
	return name
}

// Logs returns everything the process wrote so far.
func (p *Proc) Logs() string { return p.logs.String() }

// WaitLog waits until the process's output contains want, and fails the
// test if it does not within mqtttest.WaitTimeout.
func (p *Proc) WaitLog(want string) {
	p.t.Helper()
	mqtttest.WaitFor(p.t, fmt.Sprintf("%s to log %q", p.name, want), func() bool { return strings.Contains(p.Logs(), want) })
}

// LogValue waits until the process logs a line containing msg with a
// key=value field (slog's text format), and returns the value. A process
// told to listen on port 0 logs the address it got, and the test reads it
// here: a port a test picks and hands to another process can be taken in
// between by anything else on a loaded machine.
func (p *Proc) LogValue(msg, key string) string {
	p.t.Helper()
	var v string
	mqtttest.WaitFor(p.t, fmt.Sprintf("%s to log %q with %s=", p.name, msg, key), func() bool {
		for _, line := range strings.Split(p.Logs(), "\n") {
			if !strings.Contains(line, msg) {
				continue
			}
			for _, f := range strings.Fields(line) {
				if after, ok := strings.CutPrefix(f, key+"="); ok {
					v = strings.Trim(after, `"`)
					return true
				}
			}
		}
		return false
	})
	return v
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends sig and waits for the process to exit; it fails the test if
// the process still runs after StopTimeout. It returns the exit error: nil
// when the process exited with status 0.
func (p *Proc) Stop(sig syscall.Signal) error {
	p.t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(StopTimeout):
		p.t.Fatalf("%s did not exit within %v after %v", p.name, StopTimeout, sig)
		return nil
	}
}

// Kill kills the process (SIGKILL) and waits until it is gone.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Run runs bin with args to completion, with env added to the test
// process's environment, and returns its combined output. A run that fails
// fails the test with the output.
func Run(t testing.TB, env []string, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// WriteFile writes content to dir/name and returns the file's path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ReadJSONLines decodes each complete line of the JSON Lines file at path
// (a file sink's output) into a map, in order. A missing file is no lines
// yet. A last line without its newline is a write in progress (one write(2)
// is not atomic for a concurrent reader): it is left for the next call. A
// complete line that is not a JSON object fails the test.
func ReadJSONLines(t testing.TB, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%s: line %q is not a JSON object: %v", path, line, err)
		}
		out = append(out, m)
	}
}
