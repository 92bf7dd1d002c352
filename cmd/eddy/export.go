package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/connectors/walexport"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/wal"
)

// exportRange is the part of the log `eddy export` writes: offsets or
// arrival times, both inclusive; zero values are open ends.
type exportRange struct {
	fromOff, toOff   uint64
	fromTime, toTime time.Time
}

// parseBound reads a --from/--to value: a log offset or an RFC 3339 time.
func parseBound(s string) (uint64, time.Time, error) {
	if s == "" {
		return 0, time.Time{}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return n, time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("%q is neither a log offset nor an RFC 3339 time (e.g. 2026-11-30T10:00:00Z)", s)
	}
	return 0, t, nil
}

func exportCommand(g *globals) *cobra.Command {
	var dataDir, topic, from, to, output string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a range of an edge's write-ahead log as JSON Lines (input for eddy beam run)",
		Long: `Write the records of an edge's write-ahead log whose topic matches --topic,
from --from to --to (log offsets or RFC 3339 arrival times, both inclusive),
as JSON Lines: one {"offset","time","topic","payload"} object a line. The
file replays the edge's history on Apache Beam with 'eddy beam run'.

Run it on a stopped edge's data directory, or on a copy of it: opening a log
that a running edge is writing could cut its tail.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r exportRange
			var err error
			if r.fromOff, r.fromTime, err = parseBound(from); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if r.toOff, r.toTime, err = parseBound(to); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			out := g.stdout
			if output != "" && output != "-" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			n, err := exportLog(cmd.Context(), g.logger(), filepath.Join(dataDir, "wal"), topic, r, out)
			if err != nil {
				return err
			}
			if f, ok := out.(*os.File); ok && f != os.Stdout {
				if err := f.Sync(); err != nil {
					return err
				}
			}
			fmt.Fprintf(g.stderr, "exported %d records\n", n)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./eddy-data", "the edge's data directory (its log is in <data-dir>/wal)")
	cmd.Flags().StringVar(&topic, "topic", "#", "MQTT topic filter of the records to export (wildcards allowed)")
	cmd.Flags().StringVar(&from, "from", "", "first record: a log offset or an RFC 3339 arrival time (default: the oldest kept)")
	cmd.Flags().StringVar(&to, "to", "", "last record: a log offset or an RFC 3339 arrival time (default: the newest)")
	cmd.Flags().StringVarP(&output, "output", "o", "-", "file to write (- for standard output)")
	return cmd
}

// exportLog writes the matching records of the log in dir to w and returns
// how many it wrote.
func exportLog(ctx context.Context, logger *slog.Logger, dir, topic string, r exportRange, w io.Writer) (int, error) {
	if _, err := os.Stat(dir); err != nil {
		return 0, fmt.Errorf("no write-ahead log at %s: %w (give the edge's --data-dir)", dir, err)
	}
	if err := pipeline.CheckTopicFilter(topic); err != nil {
		return 0, fmt.Errorf("--topic: %w", err)
	}
	l, err := wal.Open(ctx, dir, wal.Options{Logger: logger})
	if err != nil {
		return 0, err
	}
	defer l.Close()
	bw := bufio.NewWriterSize(w, 1<<16)
	from, last := max(l.First(), r.fromOff, 1), l.Last()
	if r.toOff > 0 {
		last = min(last, r.toOff)
	}
	buf := make([]wal.Record, 256)
	var line []byte
	n := 0
	for from <= last {
		got, err := l.Read(ctx, from, buf)
		if err != nil {
			return n, fmt.Errorf("reading offset %d: %w", from, err)
		}
		for _, rec := range buf[:got] {
			from = rec.Offset + 1
			if rec.Offset > last {
				break
			}
			at := time.Unix(0, rec.Time).UTC()
			if (!r.fromTime.IsZero() && at.Before(r.fromTime)) || (!r.toTime.IsZero() && at.After(r.toTime)) || !mqtt.MatchTopic(topic, rec.Topic) {
				continue
			}
			if line, err = walexport.Append(line[:0], walexport.Record{Offset: rec.Offset, Time: at, Topic: rec.Topic, Payload: rec.Payload}); err != nil {
				return n, err
			}
			if _, err := bw.Write(line); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, bw.Flush()
}
