package main

import (
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/api"
)

// setupHTTP installs the REST API, dashboard and /metrics. `eddy run` on a
// loopback address serves without a token (and says so); `eddy edge` and
// any other address require one, from --token-file or generated under the
// data dir at first start (mode 0600; only its path is printed).
func setupHTTP(cfg *runner.Config, tokenFile string, edge bool, g *globals) error {
	if cfg.HTTPAddr == "-" {
		return nil
	}
	requireAuth := edge || !runner.IsLoopback(cfg.HTTPAddr)
	if tokenFile == "" && requireAuth {
		if cfg.DataDir == "" {
			return fmt.Errorf("the API on %s needs tokens: pass --token-file (or a --data-dir to keep generated ones)", cfg.HTTPAddr)
		}
		tokenFile = filepath.Join(cfg.DataDir, "api-tokens.yaml")
	}
	var tokens api.Tokens
	if tokenFile != "" {
		var created bool
		var err error
		tokens, created, err = api.EnsureTokens(tokenFile)
		if err != nil {
			return err
		}
		if created {
			// Never print the tokens: stdout and stderr end up in the
			// journal, readable by anyone in the adm group.
			fmt.Fprintf(g.stderr, "API tokens generated in %s (mode 0600, readable only by this user): one admin, one read-only; read them from that file\n",
				tokenFile)
		}
	}
	logger := g.logger()
	if !requireAuth {
		logger.Warn("the API and dashboard accept requests without a token on this loopback address; use --http-addr on another address or eddy edge to require one",
			"addr", cfg.HTTPAddr)
	}
	cfg.HTTPHandler = func(r *runner.Runner) (http.Handler, error) {
		srv, err := api.New(api.Options{Backend: r, Tokens: tokens, RequireAuth: requireAuth,
			Logger: logger.With("component", "api"), Clock: cfg.Clock})
		if err != nil {
			return nil, err
		}
		return srv.Handler(), nil
	}
	return nil
}
