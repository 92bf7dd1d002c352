// Package logsink implements the log sink: each event written as one
// structured slog line with its fields as attributes.
package logsink

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"github.com/eddy-edge/eddy/pipeline"
)

// Sink writes events to a logger.
type Sink struct {
	logger *slog.Logger
	level  slog.Level
	attrs  []slog.Attr
}

// New returns a log sink at the given level (debug, info, warn, error).
func New(logger *slog.Logger, level string) (*Sink, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log sink: unknown level %q; use debug, info, warn or error", level)
	}
	return &Sink{logger: logger, level: l}, nil
}

// Write logs ev with its key, event time and fields (sorted by name).
func (s *Sink) Write(ctx context.Context, ev *pipeline.Event) error {
	if !s.logger.Enabled(ctx, s.level) {
		return nil
	}
	names := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		names = append(names, k)
	}
	sort.Strings(names)
	s.attrs = s.attrs[:0]
	s.attrs = append(s.attrs, slog.String("key", ev.Key), slog.Time("eventTime", ev.EventTime()))
	for _, k := range names {
		s.attrs = append(s.attrs, slog.Any(k, ev.Fields[k]))
	}
	s.logger.LogAttrs(ctx, s.level, "event", s.attrs...)
	return nil
}

// Flush is a no-op.
func (s *Sink) Flush(context.Context) error { return nil }

// Close is a no-op.
func (s *Sink) Close() error { return nil }
