package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/eddy-edge/eddy/runner/engine"
)

// PipelineControl is the optional part of a Backend that gives operators
// their escape hatches: skipping a record a pipeline is stuck on and
// moving a pipeline's cursor. The server serves .../skip and .../seek only
// when its Backend has it.
type PipelineControl interface {
	// SkipPipeline drops the output a degraded pipeline is blocked on and
	// lets it go on (engine.Engine.Skip).
	SkipPipeline(ctx context.Context, id string) (engine.SkipResult, error)
	// SeekPipeline moves a pipeline's cursor to offset (engine.Engine.Seek).
	SeekPipeline(ctx context.Context, id string, offset uint64) (engine.SeekResult, error)
}

// controlRoutes adds the skip and seek routes when the backend has them.
// They are allowed on read-only (controller-managed) edges too: they do
// not change what a pipeline computes, and they are how an operator
// unsticks a node.
func (s *Server) controlRoutes(add func(method, path string, role Role, h handlerFunc), p string) {
	c := s.control
	if c == nil {
		return
	}
	add("POST", p+"/skip", RoleAdmin, func(w http.ResponseWriter, r *http.Request) error {
		st, err := s.status(r)
		if err != nil {
			return err
		}
		res, err := c.SkipPipeline(r.Context(), st.ID)
		switch {
		case errors.Is(err, engine.ErrNotBlocked):
			return errorf(http.StatusConflict, "not_blocked", "%v", err)
		case err != nil:
			return fmt.Errorf("skipping in pipeline %s: %w", st.ID, err)
		}
		writeJSON(w, http.StatusOK, res)
		return nil
	})
	add("POST", p+"/seek", RoleAdmin, func(w http.ResponseWriter, r *http.Request) error {
		st, err := s.status(r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		var off uint64
		switch to := q.Get("to"); {
		case q.Has("offset") && to != "":
			return errorf(http.StatusBadRequest, "bad_request", "give offset or to, not both")
		case q.Has("offset"):
			if off, err = strconv.ParseUint(q.Get("offset"), 10, 64); err != nil || off == 0 {
				return errorf(http.StatusBadRequest, "bad_request", "offset %q is not a log offset (a whole number from 1)", q.Get("offset"))
			}
		case to == "start":
			off = s.brokerSrc.WALStats().First
		case to == "end":
			off = s.brokerSrc.WALStats().Last + 1
		default:
			return errorf(http.StatusBadRequest, "bad_request", "say where to: ?offset=N, ?to=start (oldest record kept) or ?to=end (only new records)")
		}
		res, err := c.SeekPipeline(r.Context(), st.ID, off)
		if err != nil {
			return errorf(http.StatusUnprocessableEntity, "seek_failed", "seeking pipeline %s: %v", st.ID, err)
		}
		writeJSON(w, http.StatusOK, res)
		return nil
	})
}

// Skip drops the output a degraded pipeline is blocked on.
func (c *Client) Skip(ctx context.Context, id string) (engine.SkipResult, error) {
	var v engine.SkipResult
	return v, c.callJSON(ctx, http.MethodPost, PipelinePath(id)+"/skip", nil, &v)
}

// Seek moves a pipeline's cursor: to is "start", "end" or "" (then offset
// is used).
func (c *Client) Seek(ctx context.Context, id string, offset uint64, to string) (engine.SeekResult, error) {
	q := url.Values{}
	if to != "" {
		q.Set("to", to)
	} else {
		q.Set("offset", strconv.FormatUint(offset, 10))
	}
	var v engine.SeekResult
	return v, c.callJSON(ctx, http.MethodPost, PipelinePath(id)+"/seek?"+q.Encode(), nil, &v)
}
