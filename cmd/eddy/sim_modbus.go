package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/modbus"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/spf13/cobra"
)

// The simulated thermostat's register map; it is the one the Device in
// examples/modbus-thermostat/devices.yaml declares.
var (
	// thermoTemperature: holding register 0, int16 tenths of a degree.
	thermoTemperature = devices.ModbusVisitor{Register: devices.HoldingRegister, Offset: 0, Limit: 1, Scale: 0.1, DataType: devices.Int16}
	// thermoLimit: holding register 1, whole degrees (the alert setpoint).
	thermoLimit = devices.ModbusVisitor{Register: devices.HoldingRegister, Offset: 1, Limit: 1, Scale: 1, DataType: devices.Int16}
	// thermoHeater: coil 0.
	thermoHeater = devices.ModbusVisitor{Register: devices.Coil, Offset: 0, Limit: 1, Scale: 1, DataType: devices.Bool}
)

// simModbusOptions configure the simulated Modbus thermostat.
type simModbusOptions struct {
	addr      string
	serial    string
	baud      int
	dataBits  int
	parity    string
	stopBits  int
	slave     uint8
	every     time.Duration
	seed      uint64
	startTemp float64
	limit     int
}

func simModbusCommand(g *globals) *cobra.Command {
	o := &simModbusOptions{}
	cmd := &cobra.Command{
		Use:   "modbus",
		Short: "Serve a simulated Modbus thermostat (TCP or RTU on a serial line)",
		Long: `Serve a simulated thermostat as a Modbus slave, over TCP (--addr) or RTU on a
serial line (--serial, e.g. one end of a socat pty pair). Its registers are the ones
examples/modbus-thermostat/devices.yaml declares:
  holding register 0  temperature, int16 in tenths of a degree (scale 0.1): a random
                      walk that climbs while the heater is on and cools otherwise
  holding register 1  limit, whole degrees (written by the runner from the twin's
                      desired value)
  coil 0              heater
It answers function codes 1-6, 15 and 16.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return simModbus(cmd.Context(), g.logger(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:5020", "Modbus TCP listen address (ignored with --serial)")
	f.StringVar(&o.serial, "serial", "", "serial device for Modbus RTU, e.g. /dev/ttyUSB0 or a socat pty")
	f.IntVar(&o.baud, "baud", devices.DefaultBaudRate, "RTU baud rate")
	f.IntVar(&o.dataBits, "data-bits", 8, "RTU data bits")
	f.StringVar(&o.parity, "parity", "E", "RTU parity: N, E or O")
	f.IntVar(&o.stopBits, "stop-bits", 1, "RTU stop bits: 1 or 2")
	f.Uint8Var(&o.slave, "slave", 1, "slave id to answer (0 answers every id)")
	f.DurationVar(&o.every, "every", time.Second, "how often the temperature changes")
	f.Uint64Var(&o.seed, "seed", 1, "random seed (same seed, same temperatures)")
	f.Float64Var(&o.startTemp, "start-temp", 22, "initial temperature in degrees")
	f.IntVar(&o.limit, "limit", 30, "initial value of the limit register (the factory setpoint)")
	return cmd
}

// thermostat is the simulated device's physics: a bounded random walk with
// a drift that follows the heater coil.
type thermostat struct {
	mu   sync.Mutex
	rng  *rand.Rand
	temp float64
}

// step advances the temperature by one tick and stores it.
func (th *thermostat) step(r *modbus.Registers) error {
	th.mu.Lock()
	defer th.mu.Unlock()
	heater := false
	if v, err := r.Get(&thermoHeater, devices.TypeBoolean); err == nil {
		heater, _ = v.(bool)
	}
	drift := -0.05
	if heater {
		drift = 0.3
	}
	th.temp += drift + (th.rng.Float64()-0.5)*0.6
	th.temp = math.Max(-40, math.Min(125, th.temp))
	return r.Set(&thermoTemperature, devices.TypeFloat, math.Round(th.temp*10)/10)
}

// simModbus serves the thermostat until ctx ends.
func simModbus(ctx context.Context, logger *slog.Logger, o *simModbusOptions) error {
	regs := modbus.NewRegisters()
	th := &thermostat{rng: rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15)), temp: o.startTemp}
	if err := regs.Set(&thermoTemperature, devices.TypeFloat, o.startTemp); err != nil {
		return fmt.Errorf("--start-temp %g: %w", o.startTemp, err)
	}
	if err := regs.Set(&thermoLimit, devices.TypeInt, int64(o.limit)); err != nil {
		return fmt.Errorf("--limit %d: %w", o.limit, err)
	}
	opts := modbus.SlaveOptions{
		SlaveID:   o.slave,
		Registers: regs,
		Every:     o.every,
		Update: func(time.Time, *modbus.Registers) {
			if err := th.step(regs); err != nil {
				logger.Warn("thermostat update failed", "err", err)
			}
		},
		Ready: func(addr string) {
			logger.Info("simulated Modbus thermostat ready", "addr", addr, "slave", o.slave)
		},
		Clock:  clock.Real{},
		Logger: logger.With("component", "modbus-slave"),
	}
	if o.serial != "" {
		parity := strings.ToUpper(o.parity)
		if parity != "N" && parity != "E" && parity != "O" {
			return fmt.Errorf("--parity %q: use N, E or O", o.parity)
		}
		opts.Serial = &devices.RTU{Port: o.serial, Baud: o.baud, DataBits: o.dataBits, Parity: parity, StopBits: o.stopBits}
	} else {
		opts.TCPAddr = o.addr
	}
	if err := modbus.Serve(ctx, opts); err != nil {
		where := o.addr
		if o.serial != "" {
			where = o.serial
		}
		return fmt.Errorf("modbus slave on %s: %w", where, err)
	}
	return nil
}
