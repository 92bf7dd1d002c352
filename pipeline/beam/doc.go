// Package beam translates a compiled Eddy pipeline (a pipeline.Plan) into an
// Apache Beam Go pipeline, so that the YAML an edge runs natively can also
// run over recorded history on Beam's runners: direct and prism in-process,
// Flink, Spark or Dataflow through a portable job endpoint.
//
// # What runs where
//
// The translation reuses the edge's code on Beam workers rather than
// re-implementing it: the MQTT payload decoders (connectors/mqtt), the
// compiled expressions, the stateless operators (filter, map, select, drop),
// the window operator's argument evaluation and accumulators
// (operators/window.Folder over operators/aggregate.Acc) and the alert,
// dedupe and throttle operators themselves.
//
//   - input: JSON Lines in the format `eddy export` writes (one WAL record a
//     line: offset, arrival time, topic, payload).
//   - decode, eventTime, key and the steps before a window: one DoFn.
//   - lateness: the edge decides which events are late from the order they
//     arrived in (its watermark is the largest event time seen so far minus
//     allowedLateness). Beam sees a bounded input as a whole, so the
//     translation reconstructs the edge's event clock at each arrival from
//     log offsets without regrouping the events: the largest event time of
//     each block of BlockSize offsets (combined per bundle) bounds every
//     event's arrival clock from below and above; only the events whose
//     windows may have closed by the upper bound, and the events that move
//     the clock inside their block, are grouped by block (as offset and
//     time only) and scanned in log order for the exact clock. Late events
//     go to the `late:` sinks, exactly as on the edge; events of a sliding
//     window some of whose windows had closed are dropped from those
//     windows only.
//   - tumbling and sliding windows: Beam windowing (FixedWindows,
//     SlidingWindows) and a CombinePerKey whose accumulator is the edge's
//     []aggregate.Acc. Count windows have no Beam equivalent and are refused
//     at translation time.
//   - session windows: per key, the edge's own window operator over the
//     key's events in log order, advanced to the edge's event clock at each
//     arrival. Beam's Sessions merging differs from the edge's once a session
//     has closed, and prism (v2.77.0) leaves overlapping sessions unmerged
//     when a key's elements arrive in several bundles; this form is exact.
//   - alert, dedupe, throttle: per key state in event order. The translation
//     groups by key in the global window, orders each key's events as the
//     edge sees them (log offset for raw events; window end for window
//     results) and runs the edge operator over them: the same transitions,
//     the same stable alert ids.
//   - sinks: file (JSON Lines, one file per sink), log (stdout), mqtt
//     (the edge's own MQTT sink over a paho client, to Options.MQTTBroker)
//     and cloud (JetStream publish with acks to the hub's up stream,
//     Options.Cloud; see cloudSinkFn).
//
// # Live jobs
//
// A hub input with live=true is unbounded (translateLive): a splittable
// DoFn follows the stream (liveReadFn) with a manual watermark estimator
// that tracks the edge's event clock; tumbling and sliding windows fire at
// the watermark; alert, dedupe and throttle run as a stateful DoFn per key
// with an event-time timer (liveTailFn) over the edge's operators; sinks
// write per event. Session windows are refused on live inputs. Prism runs
// live jobs; Beam's direct runner cannot (its bounded SDF fallback).
//
// Elements cross stages as Rec values with a binary coder (encodeRec) and
// binary fields (packFields), and every DoFn is registered with Beam's
// register package so that workers call it without reflection.
//
// Documented differences from the edge, each covered by a test:
//   - Beam timestamps have millisecond precision; windowing uses event time
//     floored to the millisecond, while aggregates (first, last) and alerts
//     keep nanoseconds.
//   - a stale alert (a key silent for staleAfter) resolves on Beam at the key's
//     next event or at the end of the input, where the edge resolves it at its
//     next sweep of the event clock: the same episodes, a different `ts`.
//
// Beam and prism add tens of MiB to a binary and register global flags, so
// this package is linked only into cmd/eddy-beam, never into the edge binary
// (internal/deptest enforces it).
package beam
