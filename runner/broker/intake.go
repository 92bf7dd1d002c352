package broker

// StopIntake is the first step of a clean shutdown: the broker stops
// taking messages from network clients but keeps delivering. Its listeners
// stop accepting connections, and every later publish from a connected
// client is refused as the server shutting down (MQTT 5: reason 0x8B;
// 3.1.1: the connection is closed without an acknowledgement), so nothing
// new is acknowledged and a QoS 1/2 client resends to the next run.
// Publishes already acknowledged are in the log. Connected subscribers
// stay, and Publish (the pipelines' sinks) keeps working until Close, so
// pipelines can flush their last output while they stop. It is safe to
// call more than once and before Start.
func (b *Broker) StopIntake() {
	if b.intakeEnd.Swap(true) {
		return
	}
	for _, l := range b.lns {
		l.stopAccepting()
	}
	b.log.Info("mqtt intake stopped: listeners closed, client publishes refused until shutdown")
}

// stopAccepting closes the listening socket but keeps the connections it
// accepted (including upgraded websockets); Close still closes them.
func (l *listener) stopAccepting() {
	if !l.intakeEnd.Swap(true) {
		_ = l.ln.Close()
	}
}
