package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/knadh/koanf/providers/file"
)

// DefaultDebounce is how long a file must stay quiet after a change before
// it is read again: editors and tools often write a file in several steps.
const DefaultDebounce = 100 * time.Millisecond

// Watcher calls a function when a file changes, once per burst of
// changes. It uses koanf's file watch (fsnotify on the file's directory),
// which sees the file written in place, replaced by a rename (editors'
// atomic save) and swapped behind a symlink (Kubernetes ConfigMaps). When
// the file is removed, koanf's watch ends; the Watcher then waits for the
// file to be created again (fsnotify on the directory) and watches it
// anew. Nothing polls.
type Watcher struct {
	path     string
	debounce time.Duration
	onChange func()
	log      *slog.Logger

	events chan struct{} // a change was seen (1-buffered)
	lost   chan error    // koanf's watch ended (1-buffered)
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	provider *file.File // the koanf watch in force, nil while the file is gone
}

// Watch starts watching path (which must exist) and calls onChange, from
// the Watcher's own goroutine and never concurrently, debounce after the
// last of a burst of changes (debounce 0: DefaultDebounce). Close stops it.
func Watch(path string, debounce time.Duration, log *slog.Logger, onChange func()) (*Watcher, error) {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		path: path, debounce: debounce, onChange: onChange, log: log,
		events: make(chan struct{}, 1), lost: make(chan error, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if _, err := os.Stat(path); err != nil {
		// koanf's Watch leaves its lock held when the file is missing:
		// check first.
		return nil, fmt.Errorf("config: watch %s: %w", path, err)
	}
	if err := w.arm(); err != nil {
		return nil, err
	}
	go w.loop()
	return w, nil
}

// Close stops the watch and waits until a reload in progress has ended.
func (w *Watcher) Close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// arm starts a koanf watch on the file.
func (w *Watcher) arm() error {
	p := file.Provider(w.path)
	err := p.Watch(func(_ any, err error) {
		if err != nil {
			select {
			case w.lost <- err:
			default:
			}
			return
		}
		select {
		case w.events <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("config: watch %s: %w", w.path, err)
	}
	w.mu.Lock()
	w.provider = p
	w.mu.Unlock()
	return nil
}

func (w *Watcher) unarm() {
	w.mu.Lock()
	p := w.provider
	w.provider = nil
	w.mu.Unlock()
	if p != nil {
		_ = p.Unwatch()
	}
}

func (w *Watcher) loop() {
	defer close(w.done)
	defer w.unarm()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.events:
			timer.Reset(w.debounce)
		case <-timer.C:
			w.onChange()
		case err := <-w.lost:
			w.unarm()
			w.log.Warn("config file watch interrupted; waiting for the file to come back", "file", w.path, "why", err)
			// Read what is there now (nothing, most likely: the reload
			// then reports the missing file and keeps the configuration).
			w.onChange()
			if !w.awaitFile() {
				return
			}
			w.log.Info("config file back; watching it again", "file", w.path)
			timer.Reset(w.debounce)
		}
	}
}

// awaitFile waits until the file exists again and re-arms the koanf watch.
// It returns false when the Watcher is closed first.
func (w *Watcher) awaitFile() bool {
	for {
		fw, err := fsnotify.NewWatcher()
		if err != nil {
			w.log.Error("config file watch: cannot watch the directory; live reload is off", "file", w.path, "err", err)
			<-w.stop
			return false
		}
		if err := fw.Add(filepath.Dir(w.path)); err != nil {
			fw.Close()
			w.log.Error("config file watch: cannot watch the directory; live reload is off", "file", w.path, "err", err)
			<-w.stop
			return false
		}
		ok := w.waitCreated(fw)
		fw.Close()
		if !ok {
			return false
		}
		if err := w.arm(); err == nil {
			return true
		} else if !errors.Is(err, os.ErrNotExist) {
			w.log.Error("config file watch: cannot watch the file; live reload is off", "file", w.path, "err", err)
			<-w.stop
			return false
		}
		// Gone again between the event and the watch: wait once more.
	}
}

// waitCreated blocks until the file exists (checked after the directory
// watch is in place, so a creation in between is not missed).
func (w *Watcher) waitCreated(fw *fsnotify.Watcher) bool {
	want := filepath.Clean(w.path)
	for {
		if _, err := os.Stat(w.path); err == nil {
			return true
		}
		select {
		case <-w.stop:
			return false
		case ev, ok := <-fw.Events:
			if !ok {
				return false
			}
			if filepath.Clean(ev.Name) != want || !ev.Has(fsnotify.Create|fsnotify.Write) {
				continue
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return false
			}
			w.log.Warn("config file watch", "file", w.path, "err", err)
		}
	}
}
