package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// controllerCommand runs the Kubernetes controller, which is a separate
// binary (eddy-controller) so that this one never links client-go: it
// execs eddy-controller from the directory of this executable, else from
// PATH, git-style, with every argument passed on.
func controllerCommand(_ *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "controller [flags]",
		Short: "Run the Kubernetes controller (execs eddy-controller, a separate binary)",
		Long: `Run eddy-controller, the Kubernetes controller that ships Pipeline and KubeEdge
Device resources to edges through the hub and writes their status back (docs/controller.md).
It is a separate binary so that the edge binary stays small; this command looks for it next
to eddy, then on PATH, and passes every argument on (eddy controller --help shows its flags).`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := findController()
			if err != nil {
				return err
			}
			return syscall.Exec(bin, append([]string{bin}, args...), os.Environ())
		},
	}
}

func findController() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "eddy-controller")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("eddy-controller"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("eddy-controller not found next to eddy or on PATH: build it with go build ./cmd/eddy-controller (or use the container image, docs/controller.md)")
}
