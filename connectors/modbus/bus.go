package modbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eddy-edge/eddy/pipeline/devices"
	gmodbus "github.com/goburrow/modbus"
)

// errBackoff is returned while a slave is waiting to be retried.
var errBackoff = errors.New("modbus: waiting to reconnect")

// bus is one Modbus line: a serial port or a TCP address. Requests are
// serialized by sem (a channel, so that waiting honours the context).
type bus struct {
	m        *Mapper
	key      string
	sem      chan struct{}
	handler  interface{ Close() error }
	setSlave func(uint8)
	client   gmodbus.Client
	backoff  map[uint8]*backoff // per slave, guarded by sem
}

type backoff struct {
	delay   time.Duration
	retryAt time.Time
}

func busKey(mb *devices.Modbus) string {
	if mb.TCP != nil {
		return "tcp://" + mb.TCP.Addr
	}
	return "rtu://" + mb.RTU.Port
}

func (m *Mapper) newBus(mb *devices.Modbus) *bus {
	b := &bus{m: m, key: busKey(mb), sem: make(chan struct{}, 1), backoff: map[uint8]*backoff{}}
	if mb.TCP != nil {
		h := gmodbus.NewTCPClientHandler(mb.TCP.Addr)
		h.Timeout = m.opts.Timeout
		h.IdleTimeout = 0
		b.handler, b.setSlave, b.client = h, func(id uint8) { h.SlaveId = id }, gmodbus.NewClient(h)
		return b
	}
	r := mb.RTU
	h := gmodbus.NewRTUClientHandler(r.Port)
	h.BaudRate, h.DataBits, h.Parity, h.StopBits = r.Baud, r.DataBits, r.Parity, r.StopBits
	h.Timeout = m.opts.Timeout
	h.IdleTimeout = 0
	b.handler, b.setSlave, b.client = h, func(id uint8) { h.SlaveId = id }, gmodbus.NewClient(h)
	return b
}

// do runs one request for slave. While the slave is backing off it
// returns errBackoff without I/O, unless force (user writes) is set. A
// transport error closes the connection (reopened by the next request)
// and doubles the slave's backoff.
func (b *bus) do(ctx context.Context, slave uint8, force bool, fn func(gmodbus.Client) ([]byte, error)) ([]byte, error) {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-b.sem }()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bo := b.backoff[slave]
	if bo == nil {
		bo = &backoff{}
		b.backoff[slave] = bo
	}
	now := b.m.clk.Now()
	if !force && now.Before(bo.retryAt) {
		return nil, errBackoff
	}
	b.setSlave(slave)
	res, err := fn(b.client)
	var me *gmodbus.ModbusError
	if err != nil && !errors.As(err, &me) {
		b.handler.Close()
		if bo.delay == 0 {
			bo.delay = b.m.opts.MinBackoff
		} else {
			bo.delay = min(bo.delay*2, b.m.opts.MaxBackoff)
		}
		bo.retryAt = b.m.clk.Now().Add(bo.delay)
		return nil, fmt.Errorf("%s slave %d: %w (retrying in %s)", b.key, slave, err, bo.delay)
	}
	bo.delay, bo.retryAt = 0, time.Time{}
	return res, err
}

func (b *bus) close() {
	b.sem <- struct{}{}
	b.handler.Close()
	<-b.sem
}
