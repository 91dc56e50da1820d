package faults

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// partitionProxy is a TCP proxy between workers and a server that can cut
// the network without closing anything: a partition, not a clean close.
//
// While partitioned, no byte and no end-of-stream goes through in either
// direction. Bytes already read are held (not dropped) and delivered after
// Heal, as TCP retransmission delivers them once a real partition heals;
// the proxy reads on, so the senders' writes succeed as writes into a
// kernel buffer do. A connection closed on one side during the partition
// is closed on the other only after Heal. New connections are accepted (the
// kernel completes the handshake anyway) but not forwarded until Heal: the
// dialer sees a connection on which nothing ever answers, as with a peer
// whose packets vanish.
type partitionProxy struct {
	t        *testing.T
	upstream string
	ln       net.Listener

	mu     sync.Mutex
	cut    bool
	healed chan struct{} // closed while traffic flows
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// newPartitionProxy listens on a random loopback port and forwards every
// connection to upstream. It is closed when the test ends.
func newPartitionProxy(t *testing.T, upstream string) *partitionProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partitionProxy{t: t, upstream: upstream, ln: ln, healed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.healed)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// Addr is the address workers dial instead of the server's.
func (p *partitionProxy) Addr() string { return p.ln.Addr().String() }

// Partition stops all traffic, both ways, on every connection.
func (p *partitionProxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cut {
		p.cut = true
		p.healed = make(chan struct{})
	}
}

// Heal lets traffic flow again, held bytes first.
func (p *partitionProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		p.cut = false
		close(p.healed)
	}
}

// gate blocks while the network is partitioned. It returns false if the
// proxy was closed.
func (p *partitionProxy) gate() bool {
	p.mu.Lock()
	ch, closed := p.healed, p.closed
	p.mu.Unlock()
	<-ch
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && !closed
}

func (p *partitionProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *partitionProxy) accept() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(down) {
			return
		}
		p.wg.Go(func() { p.serve(down) })
	}
}

func (p *partitionProxy) serve(down net.Conn) {
	defer down.Close()
	if !p.gate() { // a connection made during a partition waits for the heal
		return
	}
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return // the server is down: so is the connection
	}
	if !p.track(up) {
		return
	}
	defer up.Close()
	var wg sync.WaitGroup
	wg.Go(func() { p.pump(up, down) })
	wg.Go(func() { p.pump(down, up) })
	wg.Wait()
}

// pump copies src to dst, holding what it read (and src's end) while the
// network is partitioned. When src ends, dst is closed too, so the other
// pump ends.
func (p *partitionProxy) pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if !p.gate() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops the proxy: the listener, every connection, every goroutine.
func (p *partitionProxy) close() {
	p.mu.Lock()
	p.closed = true
	if p.cut {
		p.cut = false
		close(p.healed)
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// TestPartitionProxy checks the proxy itself against an echo server: data
// sent during a partition is not delivered and the connection stays open;
// after the heal the held bytes arrive, in order, on the same connection.
func TestPartitionProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var echo sync.WaitGroup
	t.Cleanup(func() { ln.Close(); echo.Wait() }) // after the proxy's cleanup
	echo.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			echo.Go(func() { io.Copy(c, c); c.Close() })
		}
	})
	p := newPartitionProxy(t, ln.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip := func(msg string, within time.Duration) error {
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(within))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if string(got) != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
		return nil
	}
	if err := roundTrip("before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Partition()
	var ne net.Error
	if err := roundTrip("during", 300*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("round trip during the partition: %v, want a timeout (no answer, no close)", err)
	}
	p.Heal()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len("during"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "during" {
		t.Fatalf("after the heal: %q %v, want the held bytes", got, err)
	}
	if err := roundTrip("after", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
