// Package controller is Eddy's cloud controller: it watches Pipeline and
// EdgeNode (eddy.dev/v1alpha1), KubeEdge's Device and DeviceModel
// (devices.kubeedge.io/v1beta1) and Rule and RuleEndpoint
// (rules.kubeedge.io/v1) resources, compiles each with the very compiler
// the edge runs (pipeline.Compile, pipeline/devices), picks the nodes it
// belongs on, writes per-node plans into the fleet store, and writes status
// back from what the edges report: conditions Compiled, Delivered and
// Running with observedGeneration, and counters — batched, at most one
// status write per object per StatusInterval, never one per message.
//
// It is built on controller-runtime (one reconcile per key at a time, leader
// election) and lives only in the cmd/eddy-controller binary: the edge
// binary never links client-go. It must not import runner/.
package controller
