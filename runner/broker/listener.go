package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/internal/mochi/listeners"
	"github.com/gorilla/websocket"
)

// listener is a mochi listener over a net.Listener that the broker bound
// itself, so that the actual address (":0") is known before serving and bind
// errors surface from Start. With ws set it serves MQTT over WebSocket.
type listener struct {
	id, proto string
	ln        net.Listener
	ws        bool
	wrap      func(net.Conn) net.Conn // applied to each client connection
	ended     func(error)             // told how each connection ended
	// closeClients, when set, replaces mochi's closer on Close (see
	// Broker.disconnectListener).
	closeClients listeners.CloseFn
	log          *slog.Logger
	httpSrv      *http.Server
	end          atomic.Bool
	intakeEnd    atomic.Bool // stopAccepting: no new connections, clients kept
	mu           sync.Mutex  // guards httpSrv, and end against active.Add
	// active counts the connections being served (mochi's EstablishConnection
	// running); Close sets end under mu, so no Add follows it.
	active sync.WaitGroup
}

// serve runs establish for one connection, counted in active, unless the
// listener has closed (then conn is closed and false returned).
func (l *listener) serve(conn io.Closer, establish func()) bool {
	l.mu.Lock()
	if l.end.Load() {
		l.mu.Unlock()
		_ = conn.Close()
		return false
	}
	l.active.Add(1)
	l.mu.Unlock()
	defer l.active.Done()
	establish()
	return true
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) addr() net.Addr {
	if l == nil {
		return nil
	}
	return l.ln.Addr()
}

func (l *listener) ID() string       { return l.id }
func (l *listener) Address() string  { return l.ln.Addr().String() }
func (l *listener) Protocol() string { return l.proto }

func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

func (l *listener) Serve(establish listeners.EstablishFn) {
	if l.ws {
		l.serveWS(establish)
		return
	}
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if !l.end.Load() && !l.intakeEnd.Load() {
				l.log.Error("mqtt listener stopped", "listener", l.id, "error", err)
			}
			return
		}
		if l.end.Load() {
			_ = conn.Close()
			return
		}
		go l.serve(conn, func() {
			err := establish(l.id, l.wrap(conn))
			if l.ended != nil {
				l.ended(err)
			}
			if err != nil && !errors.Is(err, io.EOF) {
				l.log.Debug("mqtt connection ended", "listener", l.id, "remote", conn.RemoteAddr().String(), "error", err)
			}
		})
	}
}

func (l *listener) serveWS(establish listeners.EstablishFn) {
	up := &websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Browsers on other origins (dashboards) may connect; authentication
		// is MQTT's job.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	l.mu.Lock()
	l.httpSrv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			l.serve(c, func() {
				err := establish(l.id, l.wrap(&wsConn{Conn: c.UnderlyingConn(), c: c}))
				if l.ended != nil {
					l.ended(err)
				}
				if err != nil && !errors.Is(err, io.EOF) {
					l.log.Debug("mqtt websocket connection ended", "listener", l.id, "remote", r.RemoteAddr, "error", err)
				}
			})
		}),
	}
	srv := l.httpSrv
	l.mu.Unlock()
	if err := srv.Serve(l.ln); err != nil && !l.end.Load() && !l.intakeEnd.Load() && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("mqtt websocket listener stopped", "listener", l.id, "error", err)
	}
}

func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.end.Swap(true) {
		l.mu.Unlock()
		return
	}
	srv := l.httpSrv
	l.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	_ = l.ln.Close()
	if l.closeClients != nil {
		closeClients = l.closeClients
	}
	closeClients(l.id)
}

// wsConn is a net.Conn over a websocket carrying MQTT in binary messages.
type wsConn struct {
	net.Conn
	c  *websocket.Conn
	r  io.Reader
	wm sync.Mutex
}

// errNotBinary is returned for a text websocket message.
var errNotBinary = errors.New("websocket message is not binary; MQTT over websocket uses binary messages")

// NetConn returns the connection carrying the websocket.
func (w *wsConn) NetConn() net.Conn { return w.Conn }

func (w *wsConn) Read(p []byte) (int, error) {
	for {
		if w.r == nil {
			op, r, err := w.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			w.r = r
		}
		n, err := w.r.Read(p)
		if errors.Is(err, io.EOF) {
			w.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (w *wsConn) Write(p []byte) (int, error) {
	w.wm.Lock()
	defer w.wm.Unlock()
	if err := w.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *wsConn) Close() error { return w.c.Close() }

func (w *wsConn) SetDeadline(t time.Time) error {
	if err := w.c.SetReadDeadline(t); err != nil {
		return err
	}
	return w.SetWriteDeadline(t)
}

func (w *wsConn) SetReadDeadline(t time.Time) error { return w.c.SetReadDeadline(t) }

// SetWriteDeadline is serialised with Write: gorilla's write deadline is a
// plain field read by the writer (mochi sets deadlines from its read loop).
func (w *wsConn) SetWriteDeadline(t time.Time) error {
	w.wm.Lock()
	defer w.wm.Unlock()
	return w.c.SetWriteDeadline(t)
}
