package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/fleet/hub"
	"github.com/eddy-edge/eddy/runner"
)

func hubCommand(g *globals) *cobra.Command {
	cfg := hub.Config{}
	var credsFile string
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Run a NATS hub with JetStream for a fleet of edges (development and small fleets)",
		Long: `Run an embedded NATS server with JetStream that edges join as leaf nodes: plans go
down through the eddy_plans bucket, node status comes up in eddy_nodes and forwarded
data in the eddy_up stream. In production any NATS cluster with JetStream (domain
"hub") does the same job; see docs/fleet.md.

Without --credentials both listeners must be on loopback (no authentication at all).
Issue node credentials with 'eddy hub credentials add NODE --file FILE' and send
the hub SIGHUP to reload the file (removed or rotated users are disconnected). A
development CA and certificate: 'eddy hub dev-ca --dir DIR --host NAME'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if credsFile != "" {
				c, err := hub.LoadCredentials(credsFile)
				if err != nil {
					return err
				}
				if len(c.Nodes)+len(c.Admins) == 0 {
					return fmt.Errorf("%s has no users: add some with eddy hub credentials add NAME --file %s", credsFile, credsFile)
				}
				cfg.Credentials = c
			} else if !runner.IsLoopback(cfg.ClientAddr) || !runner.IsLoopback(cfg.LeafAddr) {
				return fmt.Errorf("without --credentials anyone could read every plan: keep --listen and --leaf-listen on 127.0.0.1, or pass --credentials FILE (eddy hub credentials add)")
			}
			cfg.Logger = g.logger()
			h, err := hub.New(cfg)
			if err != nil {
				return err
			}
			if err := h.Start(cmd.Context()); err != nil {
				return err
			}
			defer h.Close()
			cfg.Logger.Info("hub running", "clients", h.ClientURL(), "leaf_nodes", h.LeafURL(), "data_dir", cfg.DataDir,
				"authenticated", cfg.Credentials != nil, "tls", cfg.TLSCertFile != "")
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			for {
				select {
				case <-hup:
					if credsFile == "" {
						cfg.Logger.Warn("SIGHUP: nothing to reload without --credentials")
						continue
					}
					c, err := hub.LoadCredentials(credsFile)
					if err == nil {
						err = h.Reload(c)
					}
					if err != nil {
						cfg.Logger.Error("SIGHUP: the credentials were not reloaded; the old ones stay in force", "file", credsFile, "err", err)
						continue
					}
					cfg.Logger.Info("credentials reloaded", "file", credsFile, "admins", len(c.Admins), "nodes", len(c.Nodes))
					continue
				case <-cmd.Context().Done():
				}
				break
			}
			cfg.Logger.Info("hub shutting down")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ClientAddr, "listen", "127.0.0.1:4222", "NATS client listener (eddy fleet, the controller, cloud consumers)")
	f.StringVar(&cfg.LeafAddr, "leaf-listen", "127.0.0.1:7422", "leaf-node listener for edges (e.g. 0.0.0.0:7422 with --credentials and TLS)")
	f.StringVar(&cfg.DataDir, "data-dir", "./eddy-hub", "JetStream storage directory")
	f.StringVar(&credsFile, "credentials", "", "YAML file of admins and nodes with bcrypt hashes (eddy hub credentials add)")
	f.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate for both listeners (eddy hub dev-ca makes one)")
	f.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key for --tls-cert")
	f.StringVar(&cfg.TLSClientCAFile, "tls-client-ca", "", "require client certificates signed by this CA (mutual TLS)")
	f.StringVar(&cfg.Fleet.Domain, "domain", fleet.DefaultDomain, "JetStream domain (edges and eddy fleet must use the same)")
	f.IntVar(&cfg.Fleet.PlanShards, "plan-shards", 1, "split the plans over this many buckets (fixed when the hub is first set up; 16 or more for fleets of thousands of edges, docs/fleet.md)")
	cmd.AddCommand(hubCredentialsCommand(g), hubDevCACommand(g))
	return cmd
}

func hubCredentialsCommand(g *globals) *cobra.Command {
	var file string
	var admin bool
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Issue, rotate and revoke hub users and per-node credentials",
	}
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a node (or --admin user) with a new random password, or rotate its password",
		Long: `Add a node (or, with --admin, an administrator) to the credentials file with a new
random password, printed once: only its bcrypt hash is stored. Running it again for
the same name rotates the password. A node's user may read only its own plans and
publish only under its own subjects. Send the hub SIGHUP (or restart it) to apply.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := hub.LoadCredentials(file)
			if err != nil {
				return err
			}
			pw, err := c.Set(args[0], !admin)
			if err != nil {
				return err
			}
			if err := c.Save(file); err != nil {
				return err
			}
			if admin {
				fmt.Fprintf(g.stdout, "admin %s added to %s (send the hub SIGHUP to apply).\npassword: %s\n", args[0], file, pw)
				return nil
			}
			fmt.Fprintf(g.stdout, `node %s added to %s (send the hub SIGHUP to apply). Its edge config:

node: %s
link:
  hub: [tls://HUB-HOST:7422]
  user: %s
  password: %s
  caFile: /etc/eddy/hub-ca.pem
`, args[0], file, args[0], args[0], pw)
			return nil
		},
	}
	add.Flags().BoolVar(&admin, "admin", false, "add an administrator (full access: eddy fleet, the controller)")
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Revoke a node or admin (send the hub SIGHUP to apply: its connections are closed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := hub.LoadCredentials(file)
			if err != nil {
				return err
			}
			if !c.Remove(args[0]) {
				return fmt.Errorf("%s has no user %q", file, args[0])
			}
			if err := c.Save(file); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "removed %s from %s; send the hub SIGHUP to apply (its connections are closed)\n", args[0], file)
			return nil
		},
	}
	cmd.PersistentFlags().StringVar(&file, "file", "hub-credentials.yaml", "credentials file")
	cmd.AddCommand(add, remove)
	return cmd
}

func hubDevCACommand(g *globals) *cobra.Command {
	var dir string
	var hosts []string
	cmd := &cobra.Command{
		Use:   "dev-ca",
		Short: "Create a development CA and a hub certificate signed by it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(hosts) == 0 {
				hosts = []string{"localhost", "127.0.0.1"}
				if h, err := os.Hostname(); err == nil && net.ParseIP(h) == nil {
					hosts = append(hosts, h)
				}
			}
			ca, err := hub.WriteDevCA(dir, hosts)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s, %s and %s for %v\n  hub:   eddy hub --tls-cert %s --tls-key %s ...\n  edges: link: {caFile: %s}\n",
				ca.CAFile, ca.CertFile, ca.KeyFile, hosts, ca.CertFile, ca.KeyFile, filepath.Base(ca.CAFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "./eddy-hub-tls", "directory for ca.pem, hub.pem and hub-key.pem")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "host names and IPs edges use to reach the hub (default localhost, 127.0.0.1 and this host's name)")
	return cmd
}
