package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/eddy-edge/eddy/fleet"
)

// fleetConn are the flags that reach the hub as an administrator.
type fleetConn struct {
	hub, user, password, passwordFile, creds, ca, domain string
	timeout                                              time.Duration
	g                                                    *globals // its logger says when the hub is retried
}

func (fc *fleetConn) flags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&fc.hub, "hub", defaultHubURL, "the hub's NATS client URL (tls:// with TLS); env EDDY_HUB")
	f.StringVar(&fc.user, "user", "", "hub admin user; env EDDY_HUB_USER")
	f.StringVar(&fc.passwordFile, "password-file", "", "file holding the admin password (or env EDDY_HUB_PASSWORD)")
	f.StringVar(&fc.creds, "creds", "", "NATS .creds file (JWT accounts) instead of user/password")
	f.StringVar(&fc.ca, "ca", "", "CA file to verify the hub's TLS certificate")
	f.StringVar(&fc.domain, "domain", fleet.DefaultDomain, "the hub's JetStream domain")
	f.DurationVar(&fc.timeout, "timeout", fleet.DefaultDialTimeout, "give up after this long (a hub that refuses or does not answer is retried until then)")
}

// connect reaches the hub, retrying until ctx ends (--timeout).
func (fc *fleetConn) connect(ctx context.Context) (*fleet.Client, func(), error) {
	url := fc.hub
	if v := os.Getenv("EDDY_HUB"); v != "" && fc.hub == defaultHubURL {
		url = v
	}
	opts := []nats.Option{nats.Name("eddy fleet")}
	user := fc.user
	if user == "" {
		user = os.Getenv("EDDY_HUB_USER")
	}
	pw := os.Getenv("EDDY_HUB_PASSWORD")
	if fc.passwordFile != "" {
		b, err := os.ReadFile(fc.passwordFile)
		if err != nil {
			return nil, nil, err
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, pw))
	}
	if fc.creds != "" {
		opts = append(opts, nats.UserCredentials(fc.creds))
	}
	if fc.ca != "" {
		opts = append(opts, nats.RootCAs(fc.ca))
	}
	nc, err := fleet.Dial(ctx, url, fleet.DialOptions{Timeout: fc.timeout, Logger: fc.g.logger()}, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the hub at %s: %w (set --hub, --user and EDDY_HUB_PASSWORD; --timeout %s)", url, err, fc.timeout)
	}
	c, err := fleet.NewClient(nc, fleet.Options{Domain: fc.domain, Writer: "eddy fleet"})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return c, nc.Close, nil
}

// defaultHubURL is --hub's default: `eddy hub` on this machine.
const defaultHubURL = "nats://127.0.0.1:4222"

func fleetCommand(g *globals) *cobra.Command {
	fc := &fleetConn{g: g}
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Ship pipelines and devices to edges through the hub, without Kubernetes",
		Long: `Ship ` + fleet.KindList(fleet.FileKinds()) + ` objects to edge nodes through the hub's
plans bucket, and read what the nodes report. Each node runs the latest version of each
object it was given; nodes that are offline get the current set when they reconnect.
KubeEdge Rules need eddy controller (` + fleet.KindRule.CloudOnly() + `).`,
	}
	fc.flags(cmd)
	cmd.AddCommand(fleetApplyCommand(g, fc), fleetGetCommand(g, fc), fleetDeleteCommand(g, fc))
	return cmd
}

// targetNodes resolves --node and --selector against the registered nodes.
func targetNodes(ctx context.Context, c *fleet.Client, nodes []string, selector string) ([]string, error) {
	if len(nodes) > 0 && selector != "" {
		return nil, errors.New("give --node or --selector, not both")
	}
	for _, n := range nodes {
		if err := fleet.CheckName("--node", n); err != nil {
			return nil, err
		}
	}
	if selector == "" {
		return nodes, nil
	}
	all, err := c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	sel, err := fleet.SelectNodes(all, selector)
	if err != nil {
		return nil, err
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("no registered node has labels %s (see eddy fleet get nodes)", selector)
	}
	return sel, nil
}

func fleetApplyCommand(g *globals, fc *fleetConn) *cobra.Command {
	var files, nodes []string
	var selector string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR (--node NAME... | --selector k=v)",
		Short: "Put pipelines and devices into the plans of the chosen nodes",
		Long: `Check every ` + fleet.KindList(fleet.FileKinds()) + ` in the files (as the edge will: pipelines
compiled, devices joined to their models), then write each to the plans of the chosen
nodes. An unchanged object is not written again; a changed one gets the next
generation. Nodes are chosen by --node, or by --selector against the labels the nodes
registered with; without either, a Device goes to its spec.nodeName and a Pipeline to
the nodes its spec.nodeSelector matches (matchLabels and matchExpressions).
Files with other kinds are refused, KubeEdge Rules and RuleEndpoints included: apply
those with kubectl to a cluster running eddy controller (docs/controller.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(files) == 0 {
				return errors.New("give the objects with -f FILE or -f DIR")
			}
			objs, err := fleet.LoadPaths(files)
			if err != nil {
				fmt.Fprintln(g.stderr, err)
				return exitError{}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), fc.timeout)
			defer cancel()
			c, closeConn, err := fc.connect(ctx)
			if err != nil {
				return err
			}
			defer closeConn()
			if err := c.Setup(ctx); err != nil {
				return err
			}
			targets, err := targetNodes(ctx, c, nodes, selector)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tKIND\tNAME\tGENERATION\tRESULT")
			var registered []fleet.NodeStatus
			for _, o := range objs {
				dest := targets
				switch {
				case len(dest) > 0:
				case o.NodeName != "":
					dest = []string{o.NodeName}
				case o.NodeSelector != nil:
					if registered == nil {
						if registered, err = c.Nodes(ctx); err != nil {
							return err
						}
					}
					for _, n := range registered {
						ok, err := fleet.MatchSelector(o.NodeSelector, n.Labels)
						if err != nil {
							return fmt.Errorf("%s: %s %s: %w", o.Source, o.Kind, o.ID(), err)
						}
						if ok {
							dest = append(dest, n.Node)
						}
					}
					if len(dest) == 0 {
						fmt.Fprintf(g.stderr, "%s: %s %s: its nodeSelector matches no registered node\n", o.Source, o.Kind, o.ID())
						continue
					}
				default:
					return fmt.Errorf("%s: %s %s has no node: give --node or --selector, or spec.nodeSelector", o.Source, o.Kind, o.ID())
				}
				for _, n := range dest {
					res, err := c.Put(ctx, o.Envelope(n, "", time.Now()))
					if err != nil {
						return err
					}
					result := "unchanged"
					if res.Changed {
						result = "written"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", n, o.Kind, o.ID(), res.Generation, result)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringSliceVarP(&files, "file", "f", nil, "YAML file or directory (repeatable)")
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "node name (repeatable)")
	cmd.Flags().StringVar(&selector, "selector", "", "node labels, e.g. site=plant-1,line=2")
	return cmd
}

func fleetDeleteCommand(g *globals, fc *fleetConn) *cobra.Command {
	var files, nodes []string
	var selector, kind string
	cmd := &cobra.Command{
		Use:   "delete (-f FILE|DIR | [--kind KIND] NAMESPACE/NAME...) (--node NAME... | --selector k=v)",
		Short: "Remove objects from the plans of the chosen nodes (the nodes stop them)",
		RunE: func(cmd *cobra.Command, args []string) error {
			var keys []fleet.ObjectKey
			if len(files) > 0 {
				objs, err := fleet.LoadPaths(files)
				if err != nil {
					fmt.Fprintln(g.stderr, err)
					return exitError{}
				}
				for _, o := range objs {
					keys = append(keys, fleet.ObjectKey{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Node: o.NodeName})
				}
			}
			if len(args) > 0 && !fleet.Kind(kind).Valid() {
				return fmt.Errorf("--kind %q: use %s", kind, fleet.KindList(fleet.Kinds()))
			}
			for _, a := range args {
				ns, name, ok := strings.Cut(a, "/")
				if !ok {
					ns, name = "default", a
				}
				keys = append(keys, fleet.ObjectKey{Kind: fleet.Kind(kind), Namespace: ns, Name: name})
			}
			if len(keys) == 0 {
				return errors.New("give -f FILE or NAMESPACE/NAME arguments")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), fc.timeout)
			defer cancel()
			c, closeConn, err := fc.connect(ctx)
			if err != nil {
				return err
			}
			defer closeConn()
			targets, err := targetNodes(ctx, c, nodes, selector)
			if err != nil {
				return err
			}
			for _, k := range keys {
				dest := targets
				if len(dest) == 0 {
					if k.Node == "" {
						return fmt.Errorf("%s %s: give --node or --selector", k.Kind, k.ID())
					}
					dest = []string{k.Node}
				}
				for _, n := range dest {
					k.Node = n
					if err := c.Delete(ctx, k); err != nil {
						return err
					}
					fmt.Fprintf(g.stdout, "deleted %s %s from node %s\n", k.Kind, k.ID(), n)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "file", "f", nil, "YAML file or directory of the objects to delete")
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "node name (repeatable)")
	cmd.Flags().StringVar(&selector, "selector", "", "node labels, e.g. site=plant-1")
	cmd.Flags().StringVar(&kind, "kind", string(fleet.KindPipeline), "kind of the named objects: "+fleet.KindList(fleet.Kinds())+
		" (a Rule was written by eddy controller, which writes it again when it next reconciles the Rule)")
	return cmd
}

func fleetGetCommand(g *globals, fc *fleetConn) *cobra.Command {
	var node string
	resources := append([]string{"nodes"}, fleet.Resources()...)
	cmd := &cobra.Command{
		Use:       "get " + strings.Join(resources, "|"),
		Short:     "List the registered nodes, or the objects each node was given and what it reports",
		Args:      cobra.ExactArgs(1),
		ValidArgs: resources,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), fc.timeout)
			defer cancel()
			c, closeConn, err := fc.connect(ctx)
			if err != nil {
				return err
			}
			defer closeConn()
			nodes, err := c.Nodes(ctx)
			if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			defer tw.Flush()
			switch args[0] {
			case "nodes", "node":
				fmt.Fprintln(tw, "NODE\tSTATUS\tLABELS\tVERSION\tOBJECTS\tPROBLEMS\tOUTBOX PENDING\tLAST REPORT")
				for _, n := range nodes {
					if node != "" && n.Node != node {
						continue
					}
					status := "Ready"
					if n.Stale(time.Now()) {
						status = "NotReady"
					}
					problems := 0
					for _, o := range n.Objects {
						if o.State == fleet.StateFailed || o.State == fleet.StateRejected {
							problems++
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s ago\n", n.Node, status, labels(n.Labels), n.Version,
						len(n.Objects), problems, n.Outbox.Pending, time.Since(n.ReportedAt).Round(time.Second))
				}
			default:
				// A resource (plural or singular) names the kinds listed.
				kinds := map[fleet.Kind]bool{}
				for _, k := range fleet.Kinds() {
					if r := k.Resource(); args[0] == r || args[0] == strings.TrimSuffix(r, "s") {
						kinds[k] = true
					}
				}
				if len(kinds) == 0 {
					return fmt.Errorf("unknown resource %q: use %s", args[0], strings.Join(resources, ", "))
				}
				entries, err := c.List(ctx, node)
				if err != nil {
					return err
				}
				reported := map[string]fleet.ObjectStatus{}
				for _, n := range nodes {
					for _, o := range n.Objects {
						reported[o.Key] = o
					}
				}
				fmt.Fprintln(tw, "NODE\tKIND\tNAME\tGENERATION\tRUNNING\tSTATE\tERROR")
				for _, e := range entries {
					if e.Err != nil {
						fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\tInvalid\t%s\n", e.Key.Node, e.Key.Kind, e.Key.ID(), oneLine(e.Err.Error()))
						continue
					}
					if !kinds[e.Key.Kind] {
						continue
					}
					st, ok := reported[e.Key.String()]
					running, state := "-", "Pending"
					if ok {
						running, state = fmt.Sprint(st.Generation), string(st.State)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Key.Node, e.Key.Kind, e.Key.ID(), e.Envelope.Generation, running, state, oneLine(st.Error))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only this node")
	return cmd
}

func labels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", "; ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
