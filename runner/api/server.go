package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/pipeline/strictyaml"
	"github.com/eddy-edge/eddy/runner/dashboard"
)

// Options configure a Server. Backend is required; the rest work at their
// zero value (no auth, discarded logs, real clock, a fresh registry).
type Options struct {
	// Backend is the runner the API shows and controls. Required.
	Backend Backend
	// Tokens are the accepted bearer tokens (see LoadTokens, EnsureTokens).
	Tokens Tokens
	// RequireAuth refuses requests without a valid token (401). When false,
	// requests without a token act as admin (eddy run on loopback), and a
	// token that is sent is still checked.
	RequireAuth bool
	// Logger receives request errors. Default: discarded.
	Logger *slog.Logger
	// Clock drives stream heartbeats and alert polling. Default: real.
	Clock clock.Clock
	// Registry is where the eddy collector registers, served on /metrics.
	// Default: a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// MaxBodyBytes bounds request bodies. Default 1 MiB.
	MaxBodyBytes int64
	// TapBuffer is the events a tap holds for a slow reader before it drops.
	// Default 256.
	TapBuffer int
	// MaxStreams bounds concurrent SSE streams (503 beyond). Default 32.
	MaxStreams int
	// AlertPoll is how often the alert stream looks for new alerts.
	// Default 500ms.
	AlertPoll time.Duration
	// Heartbeat is the interval of SSE keep-alive comments. Default 15s.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a stream client. Default 10s.
	WriteTimeout time.Duration
}

// Server serves the REST API, streams, metrics and the dashboard.
type Server struct {
	opts      Options
	pipes     PipelineStore
	alertSrc  AlertSource
	deviceSrc DeviceSource
	brokerSrc BrokerSource
	linkSrc   LinkSource
	health    Health
	control   PipelineControl // nil: the backend offers no skip/seek
	actions   ActionSource    // nil: the backend runs no actions
	log       *slog.Logger
	clk       clock.Clock
	tokens    tokenSet
	reg       *prometheus.Registry
	streams   chan struct{}
	handler   http.Handler
}

// New checks opts and builds a Server. It registers the eddy metrics
// collector on opts.Registry.
func New(opts Options) (*Server, error) {
	if opts.Backend == nil {
		return nil, errors.New("api: Options.Backend is required")
	}
	if opts.RequireAuth && opts.Tokens.Empty() {
		return nil, errors.New("api: authentication is required but no tokens are configured; pass a token file (--token-file) or let the runner generate one in its data dir")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.TapBuffer <= 0 {
		opts.TapBuffer = 256
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 32
	}
	if opts.AlertPoll <= 0 {
		opts.AlertPoll = 500 * time.Millisecond
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	b := opts.Backend
	s := &Server{opts: opts, pipes: b, alertSrc: b, deviceSrc: b, brokerSrc: b, linkSrc: b, health: b, log: opts.Logger, clk: opts.Clock, tokens: newTokenSet(opts.Tokens),
		reg: opts.Registry, streams: make(chan struct{}, opts.MaxStreams)}
	if err := s.reg.Register(NewCollector(opts.Backend)); err != nil {
		return nil, fmt.Errorf("api: registering the eddy metrics collector: %w", err)
	}
	s.control, _ = b.(PipelineControl)
	s.actions, _ = b.(ActionSource)
	if s.actions != nil {
		if err := s.reg.Register(actionCollector{s.actions}); err != nil {
			return nil, fmt.Errorf("api: registering the action metrics collector: %w", err)
		}
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the HTTP handler: /api/v1/..., /metrics, /healthz,
// /readyz and the dashboard at /.
func (s *Server) Handler() http.Handler { return s.handler }

// handlerFunc is an API handler: it returns an error to render as JSON.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type route struct {
	method string
	role   Role
	h      handlerFunc
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	paths := map[string][]route{}
	add := func(method, path string, role Role, h handlerFunc) {
		paths[path] = append(paths[path], route{method, role, h})
	}
	const p = "/api/v1/pipelines/{ns}/{name}"
	add("GET", "/api/v1/info", RoleRead, s.info)
	add("GET", "/api/v1/pipelines", RoleRead, s.listPipelines)
	add("POST", "/api/v1/pipelines", RoleAdmin, s.applyPipelines)
	add("GET", p, RoleRead, s.getPipeline)
	add("PUT", p, RoleAdmin, s.putPipeline)
	add("DELETE", p, RoleAdmin, s.deletePipeline)
	add("POST", p+"/start", RoleAdmin, s.startPipeline)
	add("POST", p+"/stop", RoleAdmin, s.stopPipeline)
	s.controlRoutes(add, p)
	add("GET", p+"/stats", RoleRead, s.pipelineStats)
	add("GET", p+"/explain", RoleRead, s.explainPipeline)
	add("GET", p+"/tap", RoleRead, s.tap)
	add("POST", "/api/v1/validate", RoleRead, s.validate)
	add("POST", "/api/v1/explain", RoleRead, s.explainYAML)
	add("GET", "/api/v1/alerts", RoleRead, s.alerts)
	add("GET", "/api/v1/alerts/stream", RoleRead, s.alertStream)
	add("GET", "/api/v1/devices", RoleRead, s.devices)
	add("GET", "/api/v1/devices/{ns}/{name}", RoleRead, s.device)
	add("GET", "/api/v1/broker", RoleRead, s.broker)
	add("GET", "/api/v1/wal", RoleRead, s.wal)
	add("GET", "/api/v1/link", RoleRead, s.link)
	s.actionRoutes(add)
	for path, rs := range paths {
		var allowed []string
		for _, rt := range rs {
			mux.Handle(rt.method+" "+path, s.wrap(rt.role, rt.h))
			allowed = append(allowed, rt.method)
		}
		allow := strings.Join(allowed, ", ")
		mux.Handle(path, s.wrap(RoleNone, func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s %s is not supported; use %s", r.Method, r.URL.Path, allow)
		}))
	}
	mux.Handle("/api/", s.wrap(RoleNone, func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, "not_found", "no API endpoint %s; see docs/api.md for the list", r.URL.Path)
	}))
	mux.Handle("GET /metrics", s.wrap(RoleRead, func(w http.ResponseWriter, r *http.Request) error {
		promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}}).ServeHTTP(w, r)
		return nil
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.health.Ready(); err != nil {
			writeError(w, errorf(http.StatusServiceUnavailable, "not_ready", "%v", err))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	dash := dashboard.Handler()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s %s: the dashboard is read with GET", r.Method, r.URL.Path))
			return
		}
		dash.ServeHTTP(w, r)
	})
	return mux
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error("metrics", "err", fmt.Sprint(v...)) }

type roleKey struct{}

// wrap authenticates, checks the role and renders returned errors.
func (s *Server) wrap(need Role, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role, err := s.authenticate(r)
		if err == nil && role < need {
			err = errorf(http.StatusForbidden, "forbidden", "this token is read-only; %s %s needs an admin token", r.Method, r.URL.Path)
		}
		if err == nil {
			r = r.WithContext(context.WithValue(r.Context(), roleKey{}, role))
			err = h(w, r)
		}
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				s.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
				ae = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
			}
			if ae.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="eddy"`)
			}
			writeError(w, ae)
		}
	})
}

func (s *Server) authenticate(r *http.Request) (Role, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if s.opts.RequireAuth {
			return RoleNone, errorf(http.StatusUnauthorized, "unauthorized",
				"this runner requires a bearer token: send 'Authorization: Bearer <token>' (eddy: --token or EDDY_TOKEN); tokens are in the runner's token file")
		}
		return RoleAdmin, nil
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return RoleNone, errorf(http.StatusUnauthorized, "unauthorized", "the Authorization header must be 'Bearer <token>'")
	}
	role := s.tokens.role(strings.TrimSpace(tok))
	if role == RoleNone {
		return RoleNone, errorf(http.StatusUnauthorized, "unauthorized", "the bearer token is not valid on this runner; check --token / EDDY_TOKEN against the runner's token file")
	}
	return role, nil
}

func roleOf(ctx context.Context) Role {
	r, _ := ctx.Value(roleKey{}).(Role)
	return r
}

// Error is an API error: its HTTP status, a stable machine-readable code
// and a message that says what went wrong and how to fix it. It is sent
// as {"error": {"code": ..., "message": ..., "details": ...}}.
type Error struct {
	Status  int       `json:"-"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Details []Problem `json:"details,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code) }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, struct {
		Error *Error `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encoding the response failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "the request body is over %d bytes; split the file", s.opts.MaxBodyBytes)
		}
		return nil, errorf(http.StatusBadRequest, "bad_request", "reading the request body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, errorf(http.StatusBadRequest, "bad_request", "the request body is empty; send Pipeline YAML")
	}
	return b, nil
}

// compile compiles a request body. The file name in errors is the
// ?file= query parameter (the CLI sends the local path), else "request".
func (s *Server) compile(w http.ResponseWriter, r *http.Request) ([]*pipeline.Plan, []byte, error) {
	src, err := s.readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	file := r.URL.Query().Get("file")
	if file == "" {
		file = "request"
	}
	plans, err := pipeline.Load(file, src)
	if err != nil {
		return nil, src, invalid(err)
	}
	return plans, src, nil
}

func invalid(err error) *Error {
	e := &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_pipeline", Message: err.Error()}
	var es strictyaml.Errors
	if errors.As(err, &es) {
		for _, x := range es {
			e.Details = append(e.Details, Problem{Line: x.Line, Column: x.Col, Path: x.Path, Message: x.Msg})
		}
	} else {
		e.Details = []Problem{{Message: err.Error()}}
	}
	return e
}

func (s *Server) writable() error {
	if s.health.ReadOnly() {
		return errorf(http.StatusForbidden, "read_only",
			"this edge is managed by the controller: its pipelines are read-only here; change the Pipeline resource in the cluster instead")
	}
	return nil
}
