package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/goburrow/serial"
)

// Registers is the memory of a simulated slave. It is safe for concurrent
// use.
type Registers struct {
	mu       sync.Mutex
	coils    [65536]bool
	discrete [65536]bool
	input    [65536]uint16
	holding  [65536]uint16
}

// NewRegisters returns zeroed registers.
func NewRegisters() *Registers { return &Registers{} }

// Set stores value where visitor v points, encoded as the mapper would
// write it (so Input and DiscreteInput can be set too).
func (r *Registers) Set(v *devices.ModbusVisitor, t devices.PropertyType, value any) error {
	data, err := Encode(v, t, value)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch v.Register {
	case devices.Coil:
		r.coils[v.Offset] = data[0] != 0
	case devices.DiscreteInput:
		r.discrete[v.Offset] = data[0] != 0
	default:
		tbl := &r.holding
		if v.Register == devices.Input {
			tbl = &r.input
		}
		for i := 0; i+1 < len(data) && int(v.Offset)+i/2 < 65536; i += 2 {
			tbl[int(v.Offset)+i/2] = binary.BigEndian.Uint16(data[i:])
		}
	}
	return nil
}

// Get reads the value where visitor v points.
func (r *Registers) Get(v *devices.ModbusVisitor, t devices.PropertyType) (any, error) {
	r.mu.Lock()
	var data []byte
	switch v.Register {
	case devices.Coil, devices.DiscreteInput:
		b := r.coils[v.Offset]
		if v.Register == devices.DiscreteInput {
			b = r.discrete[v.Offset]
		}
		data = []byte{0}
		if b {
			data[0] = 1
		}
	default:
		tbl := &r.holding
		if v.Register == devices.Input {
			tbl = &r.input
		}
		n := max(int(v.Limit), v.DataType.Registers())
		for i := 0; i < n && int(v.Offset)+i < 65536; i++ {
			data = binary.BigEndian.AppendUint16(data, tbl[int(v.Offset)+i])
		}
	}
	r.mu.Unlock()
	return Decode(v, t, data)
}

// SlaveOptions configure a simulated slave. Set TCPAddr or Serial.
type SlaveOptions struct {
	// TCPAddr to listen on for Modbus TCP, e.g. 127.0.0.1:5020 (":0" picks a port).
	TCPAddr string
	// Serial is a serial line for Modbus RTU (e.g. one end of a socat pty pair).
	Serial *devices.RTU
	// SlaveID to answer; 0 answers every id.
	SlaveID uint8
	// Registers hold the slave's memory; nil starts from zeros.
	Registers *Registers
	// Every and Update change the registers over time (e.g. a temperature
	// random walk): Update is called every Every on the clock.
	Every  time.Duration
	Update func(now time.Time, r *Registers)
	// Ready is called with the listening address (TCP) or port (RTU).
	Ready func(addr string)
	// Clock drives Update; nil is the real clock.
	Clock clock.Clock
	// Logger; nil discards.
	Logger *slog.Logger
}

// Serve runs a simulated Modbus slave until ctx ends. It answers function
// codes 1-6, 15 and 16 and replies with exception 1 (illegal function)
// to others.
func Serve(ctx context.Context, opts SlaveOptions) error {
	if opts.Registers == nil {
		opts.Registers = NewRegisters()
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	if opts.Update != nil && opts.Every > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := opts.Clock.NewTicker(opts.Every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C():
					opts.Update(now, opts.Registers)
				}
			}
		}()
	}
	s := &slave{opts: opts}
	if opts.Serial != nil {
		return s.serveRTU(ctx)
	}
	if opts.TCPAddr == "" {
		return errors.New("modbus: SlaveOptions needs TCPAddr or Serial")
	}
	ln, err := net.Listen("tcp", opts.TCPAddr)
	if err != nil {
		return err
	}
	if opts.Ready != nil {
		opts.Ready(ln.Addr().String())
	}
	go func() { <-ctx.Done(); ln.Close() }()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			s.serveTCPConn(c)
		}()
	}
}

type slave struct{ opts SlaveOptions }

func (s *slave) serveTCPConn(c net.Conn) {
	defer c.Close()
	var hdr [7]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[4:]))
		if n < 2 || n > 254 {
			return
		}
		pdu := make([]byte, n-1)
		if _, err := io.ReadFull(c, pdu); err != nil {
			return
		}
		if s.opts.SlaveID != 0 && hdr[6] != s.opts.SlaveID {
			continue
		}
		resp := s.handle(pdu)
		out := make([]byte, 7, 7+len(resp))
		copy(out, hdr[:4])
		binary.BigEndian.PutUint16(out[4:], uint16(len(resp)+1))
		out[6] = hdr[6]
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

func (s *slave) serveRTU(ctx context.Context) error {
	r := s.opts.Serial
	port, err := serial.Open(&serial.Config{Address: r.Port, BaudRate: max(r.Baud, 1200), DataBits: max(r.DataBits, 8), StopBits: max(r.StopBits, 1), Parity: orDefault(r.Parity, "N"), Timeout: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	defer port.Close()
	if s.opts.Ready != nil {
		s.opts.Ready(r.Port)
	}
	var buf []byte
	chunk := make([]byte, 256)
	for ctx.Err() == nil {
		n, err := port.Read(chunk)
		if err != nil {
			if errors.Is(err, serial.ErrTimeout) {
				buf = buf[:0] // a silent gap ends any partial frame
				continue
			}
			return err
		}
		buf = append(buf, chunk[:n]...)
		for len(buf) >= 4 {
			want := rtuRequestLen(buf)
			if want < 0 || want > 256 {
				buf = buf[:0]
				break
			}
			if len(buf) < want {
				break
			}
			frame := buf[:want]
			buf = buf[want:]
			if crc16(frame[:want-2]) != binary.LittleEndian.Uint16(frame[want-2:]) {
				continue
			}
			if s.opts.SlaveID != 0 && frame[0] != s.opts.SlaveID || frame[0] == 0 {
				continue
			}
			resp := append([]byte{frame[0]}, s.handle(frame[1:want-2])...)
			resp = binary.LittleEndian.AppendUint16(resp, crc16(resp))
			if _, err := port.Write(resp); err != nil {
				return err
			}
		}
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// rtuRequestLen is the length of the request frame starting buf (which
// has at least 4 bytes), or -1 for an unknown function.
func rtuRequestLen(buf []byte) int {
	switch buf[1] {
	case 1, 2, 3, 4, 5, 6:
		return 8
	case 15, 16:
		if len(buf) < 7 {
			return 9 // wait for the byte count
		}
		return 9 + int(buf[6])
	}
	return -1
}

// handle answers one request PDU (function code + data).
func (s *slave) handle(pdu []byte) []byte {
	r := s.opts.Registers
	fc := pdu[0]
	exc := func(code byte) []byte { return []byte{fc | 0x80, code} }
	if len(pdu) < 5 {
		return exc(3)
	}
	addr := int(binary.BigEndian.Uint16(pdu[1:]))
	qty := int(binary.BigEndian.Uint16(pdu[3:]))
	r.mu.Lock()
	defer r.mu.Unlock()
	switch fc {
	case 1, 2:
		if qty < 1 || qty > 2000 || addr+qty > 65536 {
			return exc(2)
		}
		tbl := &r.coils
		if fc == 2 {
			tbl = &r.discrete
		}
		out := make([]byte, 2+(qty+7)/8)
		out[0], out[1] = fc, byte((qty+7)/8)
		for i := 0; i < qty; i++ {
			if tbl[addr+i] {
				out[2+i/8] |= 1 << (i % 8)
			}
		}
		return out
	case 3, 4:
		if qty < 1 || qty > 125 || addr+qty > 65536 {
			return exc(2)
		}
		tbl := &r.holding
		if fc == 4 {
			tbl = &r.input
		}
		out := []byte{fc, byte(qty * 2)}
		for i := 0; i < qty; i++ {
			out = binary.BigEndian.AppendUint16(out, tbl[addr+i])
		}
		return out
	case 5:
		if qty != 0xFF00 && qty != 0 {
			return exc(3)
		}
		r.coils[addr] = qty == 0xFF00
		return pdu[:5]
	case 6:
		r.holding[addr] = uint16(qty)
		return pdu[:5]
	case 15, 16:
		if len(pdu) < 6 || len(pdu) < 6+int(pdu[5]) || addr+qty > 65536 {
			return exc(3)
		}
		data := pdu[6 : 6+int(pdu[5])]
		if fc == 15 {
			if len(data) < (qty+7)/8 {
				return exc(3)
			}
			for i := 0; i < qty; i++ {
				r.coils[addr+i] = data[i/8]&(1<<(i%8)) != 0
			}
		} else {
			if len(data) < qty*2 {
				return exc(3)
			}
			for i := 0; i < qty; i++ {
				r.holding[addr+i] = binary.BigEndian.Uint16(data[2*i:])
			}
		}
		return pdu[:5]
	}
	return exc(1)
}

func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
