// Package mqtt is github.com/mochi-mqtt/server/v2 v2.7.9 (MIT, see
// LICENSE.md), Eddy's embedded MQTT broker, forked so that Eddy's broker
// (runner/broker) can change its hot path; it is imported only through
// runner/broker and tests.
//
// Kept: the server, clients, topics index, inflight store and hooks, and
// the packets, system, mempool, hooks/storage, hooks/auth (AllowHook) and
// listeners (TCP, mock) packages, with upstream's tests (run by make test).
// Left out: the websocket, unix socket and HTTP listeners, the auth ledger,
// the storage backends and the config loader, which Eddy does not use.
// Changed code is marked "eddy:"; docs/design.md, "The MQTT broker fork",
// says what changed and why.
package mqtt
