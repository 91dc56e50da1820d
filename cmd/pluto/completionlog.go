package main

import (
	"fmt"
	"os"
	"sync"

	"github.com/pluto-sched/pluto/internal/store"
)

// completionLog appends one line per committed terminal status: an audit
// trail of what the server accepted. Each line is one write, so a killed
// server loses none it recorded (the page cache outlives the process).
type completionLog struct {
	mu  sync.Mutex
	f   *os.File
	buf []byte
}

func openCompletionLog(path string) (*completionLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--completion-log: %w", err)
	}
	return &completionLog{f: f}, nil
}

func (l *completionLog) record(id string, status store.RunStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(append(append(append(l.buf[:0], id...), ' '), status...), '\n')
	_, _ = l.f.Write(l.buf) // an audit aid: a failed write must not stop the server
}

func (l *completionLog) Close() error { return l.f.Close() }
