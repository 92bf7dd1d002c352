package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/twin"
)

// Client talks to a runner's API. The zero value is not usable: set
// BaseURL. Errors the server reports are returned as *Error.
type Client struct {
	// BaseURL is the runner's address, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Token is the bearer token; empty sends none.
	Token string
	// HTTP is the HTTP client. Default: http.DefaultClient (no timeout,
	// so streams can last; bound calls with the context).
	HTTP *http.Client
}

// NewClient returns a client for the runner at base ("host:port" or a URL).
func NewClient(base, token string) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{BaseURL: strings.TrimRight(base, "/"), Token: token}
}

// PipelinePath returns the API path of a pipeline id ("ns/name", or
// "name" in the default namespace).
func PipelinePath(id string) string {
	ns, name, ok := strings.Cut(id, "/")
	if !ok {
		ns, name = "default", id
	}
	return "/api/v1/pipelines/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("eddy API %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("eddy API at %s: %w (is the runner up? set --server or EDDY_SERVER)", c.BaseURL, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env struct {
		Error *Error `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err == nil && env.Error != nil {
		env.Error.Status = resp.StatusCode
		return env.Error
	}
	return &Error{Status: resp.StatusCode, Code: "http_error", Message: fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(b))}
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.callJSON(ctx, http.MethodGet, path, nil, out)
}

func (c *Client) callJSON(ctx context.Context, method, path string, body []byte, out any) error {
	resp, err := c.do(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("eddy API %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) text(ctx context.Context, method, path string, body []byte) (string, error) {
	resp, err := c.do(ctx, method, path, body, "text/plain")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Info returns the caller's role and the runner's mode.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var v Info
	return v, c.getJSON(ctx, "/api/v1/info", &v)
}

// Pipelines lists every pipeline's status.
func (c *Client) Pipelines(ctx context.Context) ([]engine.Status, error) {
	var v PipelineList
	return v.Items, c.getJSON(ctx, "/api/v1/pipelines", &v)
}

// Pipeline returns a pipeline's status, plan, source and firing alerts.
func (c *Client) Pipeline(ctx context.Context, id string) (PipelineDetail, error) {
	var v PipelineDetail
	return v, c.getJSON(ctx, PipelinePath(id), &v)
}

// Stats returns a pipeline's counters.
func (c *Client) Stats(ctx context.Context, id string) (engine.Status, error) {
	var v engine.Status
	return v, c.getJSON(ctx, PipelinePath(id)+"/stats", &v)
}

// Apply creates or replaces every pipeline in a YAML file; file names the
// source in error messages.
func (c *Client) Apply(ctx context.Context, file string, src []byte) (ApplyResult, error) {
	var v ApplyResult
	return v, c.callJSON(ctx, http.MethodPost, "/api/v1/pipelines?file="+url.QueryEscape(file), src, &v)
}

// Replace creates or replaces one pipeline; src must hold exactly it.
func (c *Client) Replace(ctx context.Context, id, file string, src []byte) (ApplyResult, error) {
	var v ApplyResult
	return v, c.callJSON(ctx, http.MethodPut, PipelinePath(id)+"?file="+url.QueryEscape(file), src, &v)
}

// Delete removes a pipeline and its checkpoint.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.callJSON(ctx, http.MethodDelete, PipelinePath(id), nil, nil)
}

// Start resumes a stopped pipeline.
func (c *Client) Start(ctx context.Context, id string) (engine.Status, error) {
	var v engine.Status
	return v, c.callJSON(ctx, http.MethodPost, PipelinePath(id)+"/start", nil, &v)
}

// Stop stops a pipeline, keeping its checkpoint.
func (c *Client) Stop(ctx context.Context, id string) (engine.Status, error) {
	var v engine.Status
	return v, c.callJSON(ctx, http.MethodPost, PipelinePath(id)+"/stop", nil, &v)
}

// Validate compiles YAML on the runner without running it.
func (c *Client) Validate(ctx context.Context, file string, src []byte) (ValidateResult, error) {
	var v ValidateResult
	return v, c.callJSON(ctx, http.MethodPost, "/api/v1/validate?file="+url.QueryEscape(file), src, &v)
}

// Explain returns a running pipeline's plan as text.
func (c *Client) Explain(ctx context.Context, id string) (string, error) {
	return c.text(ctx, http.MethodGet, PipelinePath(id)+"/explain", nil)
}

// Alerts returns firing alerts and recent history.
func (c *Client) Alerts(ctx context.Context) (AlertList, error) {
	var v AlertList
	return v, c.getJSON(ctx, "/api/v1/alerts", &v)
}

// Devices returns the devices and their twins.
func (c *Client) Devices(ctx context.Context) ([]*twin.DeviceRecord, error) {
	var v DeviceList
	return v.Items, c.getJSON(ctx, "/api/v1/devices", &v)
}

// Broker returns the broker's stats, clients and topics.
func (c *Client) Broker(ctx context.Context) (Broker, error) {
	var v Broker
	return v, c.getJSON(ctx, "/api/v1/broker", &v)
}

// WAL returns the log's stats.
func (c *Client) WAL(ctx context.Context) (WAL, error) {
	var v WAL
	return v, c.getJSON(ctx, "/api/v1/wal", &v)
}

// Link returns the uplink's state.
func (c *Client) Link(ctx context.Context) (LinkStatus, error) {
	var v LinkStatus
	return v, c.getJSON(ctx, "/api/v1/link", &v)
}

// Event is one Server-Sent Event.
type Event struct {
	Name string
	Data []byte
}

// Tap streams a pipeline's output until ctx ends or fn returns an error
// (which Tap returns). Events are "output" (a JSON object) and "dropped"
// (a Dropped).
func (c *Client) Tap(ctx context.Context, id string, fn func(Event) error) error {
	return c.stream(ctx, PipelinePath(id)+"/tap", fn)
}

// AlertStream streams alerts: first a "snapshot" (an AlertList), then one
// "alert" event (an Alert) per notification.
func (c *Client) AlertStream(ctx context.Context, fn func(Event) error) error {
	return c.stream(ctx, "/api/v1/alerts/stream", fn)
}

func (c *Client) stream(ctx context.Context, path string, fn func(Event) error) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = ReadSSE(resp.Body, fn)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// ReadSSE parses a Server-Sent Event stream and calls fn per event.
// Comments are skipped; multi-line data is joined with newlines.
func ReadSSE(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev Event
	var data [][]byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) > 0 || ev.Name != "" {
				ev.Data = bytes.Join(data, []byte("\n"))
				if ev.Name == "" {
					ev.Name = "message"
				}
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, data = Event{}, nil
		case line[0] == ':':
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				ev.Name = string(value)
			case "data":
				data = append(data, append([]byte(nil), value...))
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
