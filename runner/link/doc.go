// Package link is the edge's side of the cloud–edge link: an embedded
// nats-server that is a leaf node of the hub (one outbound TCP/TLS
// connection that reconnects by itself, and a NATS server on loopback for
// local apps), the watch of this node's keys in the plans bucket, the
// applied set kept in the data dir (so a restarted edge runs its last plans
// without the hub), hot apply through the runner, the node's status record,
// and the WAL outbox that forwards data to the hub's stream.
//
// The wire contract (keys, envelopes, status records, subjects,
// permissions) is package fleet's; this package only implements the edge's
// half of it. It never imports the runner: the runner hands in a Target.
//
//	hub (any NATS + JetStream)
//	  ^  leaf connection (TLS, node credentials)
//	  |
//	embedded nats-server (leaf; 127.0.0.1:4222 for local apps)
//	  ^ in-process client (_INBOX_<node>)
//	  |-- plans:  watch <node>.> --> decode, compile --> Target.ApplyPipeline / RemovePipeline / SetDevices
//	  |-- status: NodeStatus every heartbeat and on change
//	  '-- outbox: WAL records ($eddy/up/..., twin stream) --> eddy.up.<node>.<subject>, Nats-Msg-Id, acked --> cursor
package link
