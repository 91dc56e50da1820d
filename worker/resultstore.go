package worker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/protobuf/proto"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// The result store keeps the results of finished attempts on disk until a
// server acknowledges them (Options.ResultDir). It is one append-only log,
// <dir>/results.log:
//
//	file   = magic record*
//	magic  = "PLUTORS\x01"
//	record = length:uint32le  crc:uint32le  body[length]
//	body   = kind:byte  pluto.v1.Result (protobuf)
//
// crc is the CRC-32C (Castagnoli) of body. kind 1 is a result to deliver;
// kind 2 is a tombstone naming a result (run_id, attempt) that needs no
// delivery any more, because a server acknowledged it, accepted or rejected.
// Replaying the log in order gives the results still to deliver.
//
// Results are appended and fsync'd before Append returns; tombstones are
// not synced — losing one in a crash only means the result is sent again
// and the server rejects it, its attempt being over. A crash in the middle
// of an append leaves a torn record at the end: it fails its length or
// checksum and it, and anything after it, is ignored (and cut off by the
// compaction that follows the open). Compaction rewrites the live results
// to results.log.tmp, syncs it, renames it over results.log and syncs the
// directory, so a crash leaves either the old log or the new one. It runs
// when the store is opened and closed, and when tombstoned bytes exceed
// both the live bytes and 1 MiB. The directory is locked (flock) while a
// worker uses it.

// resultStore is where a Worker keeps results the server has not
// acknowledged. The worker calls it from one goroutine at a time.
type resultStore interface {
	// Append writes results and makes them durable before it returns.
	Append(rs []*plutov1.Result) error
	// Remove forgets the results of these attempts (not necessarily
	// durably). Unknown keys are ignored.
	Remove(keys []runKey) error
	// Close compacts the log and releases the store.
	Close() error
}

const (
	resultLogName  = "results.log"
	resultLogMagic = "PLUTORS\x01"
	recHeaderLen   = 8
	// maxRecordBytes bounds one record; a larger length is corruption.
	maxRecordBytes = 64 << 20
	// compactMinBytes: a log is not compacted while it holds fewer
	// tombstoned bytes than this.
	compactMinBytes = 1 << 20

	recResult byte = 1
	recRemove byte = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errStoreClosed is returned by a fileStore used after Close.
var errStoreClosed = errors.New("result store closed")

// logRecord is one decoded record.
type logRecord struct {
	kind byte
	res  *plutov1.Result
	size int // bytes in the log, header included
}

func (r logRecord) key() runKey { return runKey{r.res.GetRunId(), r.res.GetAttempt()} }

// appendRecord encodes one record onto b.
func appendRecord(b []byte, kind byte, res *plutov1.Result) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, recHeaderLen)...)
	b = append(b, kind)
	var err error
	if b, err = (proto.MarshalOptions{}).MarshalAppend(b, res); err != nil {
		return b[:start], fmt.Errorf("encode result of run %s attempt %d: %w", res.GetRunId(), res.GetAttempt(), err)
	}
	body := b[start+recHeaderLen:]
	if len(body) > maxRecordBytes {
		return b[:start], fmt.Errorf("result of run %s attempt %d: %d bytes, more than %d", res.GetRunId(), res.GetAttempt(), len(body), maxRecordBytes)
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b, nil
}

// decodeRecords decodes the records at the start of b (the log after its
// magic). It stops at the first record that is incomplete, fails its
// checksum or does not decode, and returns the records before it and the
// length of the valid prefix of b. It never fails: whatever follows the
// valid prefix is a torn or corrupt tail.
func decodeRecords(b []byte) (recs []logRecord, valid int) {
	for {
		rest := b[valid:]
		if len(rest) < recHeaderLen {
			return recs, valid
		}
		n := binary.LittleEndian.Uint32(rest)
		if n == 0 || n > maxRecordBytes || uint64(n) > uint64(len(rest)-recHeaderLen) {
			return recs, valid
		}
		body := rest[recHeaderLen : recHeaderLen+int(n)]
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(rest[4:]) {
			return recs, valid
		}
		kind := body[0]
		if kind != recResult && kind != recRemove {
			return recs, valid
		}
		res := new(plutov1.Result)
		if err := proto.Unmarshal(body[1:], res); err != nil || res.GetRunId() == "" {
			return recs, valid
		}
		size := recHeaderLen + int(n)
		recs = append(recs, logRecord{kind: kind, res: res, size: size})
		valid += size
	}
}

// replay applies records in order and returns the results still live, in
// the order they were first written.
func replay(recs []logRecord) []logRecord {
	idx := make(map[runKey]int)
	var live []logRecord
	for _, r := range recs {
		k := r.key()
		i, ok := idx[k]
		switch r.kind {
		case recResult:
			if ok {
				live[i] = r // a duplicate (written again after a failed append): the later copy wins
			} else {
				idx[k] = len(live)
				live = append(live, r)
			}
		case recRemove:
			if ok {
				live[i].res = nil
				delete(idx, k)
			}
		}
	}
	out := live[:0]
	for _, r := range live {
		if r.res != nil {
			out = append(out, r)
		}
	}
	return out
}

// fileStore is the resultStore of Options.ResultDir.
type fileStore struct {
	dir  string
	path string

	mu        sync.Mutex
	lock      io.Closer // the directory lock
	f         *os.File  // the log, opened for appending
	size      int64     // bytes in the log, magic included
	live      map[runKey]int
	liveBytes int64
	deadBytes int64 // tombstones and the results they name
	dirty     bool  // an append failed part-way: compact before the next one
	buf       []byte

	compactMin int64 // compactMinBytes; tests lower it
}

// storeLoad is what openFileStore found in the log.
type storeLoad struct {
	results []*plutov1.Result // still to deliver, in the order written
	dropped int64             // bytes of a torn or corrupt tail, ignored
}

// openFileStore opens (creating it if needed) the result store in dir and
// returns the results it holds. The directory stays locked until Close.
func openFileStore(dir string) (*fileStore, storeLoad, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, storeLoad{}, fmt.Errorf("result store: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, storeLoad{}, fmt.Errorf("result store %s: %w", dir, err)
	}
	s := &fileStore{
		dir:        dir,
		path:       filepath.Join(dir, resultLogName),
		lock:       lock,
		live:       make(map[runKey]int),
		compactMin: compactMinBytes,
	}
	load, err := s.load()
	if err != nil {
		lock.Close()
		return nil, storeLoad{}, fmt.Errorf("result store %s: %w", dir, err)
	}
	return s, load, nil
}

// load reads the log, then rewrites it when it holds anything but live
// results (tombstones, a torn tail) and opens it for appending.
func (s *fileStore) load() (storeLoad, error) {
	_ = os.Remove(s.path + ".tmp") // left by a compaction that crashed
	data, err := os.ReadFile(s.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return storeLoad{}, err
	}
	var load storeLoad
	var live []logRecord
	total := 0
	switch {
	case len(data) >= len(resultLogMagic) && string(data[:len(resultLogMagic)]) == resultLogMagic:
		recs, valid := decodeRecords(data[len(resultLogMagic):])
		load.dropped = int64(len(data) - len(resultLogMagic) - valid)
		live = replay(recs)
		total = len(recs)
	case len(data) < len(resultLogMagic) && string(data) == resultLogMagic[:len(data)]:
		// Missing or empty (a prefix of the magic cannot come from this
		// code, which creates logs by renaming complete ones, but is
		// harmless): a new store.
		total = -1
	default:
		return storeLoad{}, fmt.Errorf("%s is not a result log (bad magic)", s.path)
	}
	for _, r := range live {
		s.live[r.key()] = r.size
		s.liveBytes += int64(r.size)
		load.results = append(load.results, r.res)
	}
	if total != len(live) || load.dropped > 0 {
		if err := s.compactLocked(live); err != nil {
			return storeLoad{}, err
		}
		return load, nil
	}
	if s.f, err = os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return storeLoad{}, err
	}
	s.size = int64(len(data))
	return load, nil
}

// Append implements resultStore.
func (s *fileStore) Append(rs []*plutov1.Result) error {
	if len(rs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errStoreClosed
	}
	if s.dirty {
		if err := s.rewriteLocked(); err != nil {
			return fmt.Errorf("result store: recover from a failed append: %w", err)
		}
	}
	b := s.buf[:0]
	sizes := make([]int, len(rs))
	for i, res := range rs {
		n := len(b)
		var err error
		if b, err = appendRecord(b, recResult, res); err != nil {
			return fmt.Errorf("result store: %w", err)
		}
		sizes[i] = len(b) - n
	}
	s.buf = b[:0]
	if _, err := s.f.Write(b); err != nil {
		s.failedAppendLocked()
		return fmt.Errorf("result store: append: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		s.failedAppendLocked()
		return fmt.Errorf("result store: sync: %w", err)
	}
	s.size += int64(len(b))
	for i, res := range rs {
		k := runKey{res.GetRunId(), res.GetAttempt()}
		if old, ok := s.live[k]; ok {
			s.liveBytes -= int64(old)
			s.deadBytes += int64(old)
		}
		s.live[k] = sizes[i]
		s.liveBytes += int64(sizes[i])
	}
	if cap(s.buf) > 1<<20 {
		s.buf = nil // do not pin a large batch
	}
	return nil
}

// failedAppendLocked cuts what a failed append may have left at the end of
// the log; if even that fails, the log is rewritten before the next append.
func (s *fileStore) failedAppendLocked() {
	if err := s.f.Truncate(s.size); err != nil {
		s.dirty = true
	}
}

// Remove implements resultStore.
func (s *fileStore) Remove(keys []runKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errStoreClosed
	}
	if s.dirty {
		// The log's tail is damaged: rewrite it without these results
		// rather than append after the damage.
		for _, k := range keys {
			delete(s.live, k)
		}
		if err := s.rewriteLocked(); err != nil {
			return fmt.Errorf("result store: recover from a failed append: %w", err)
		}
		return nil
	}
	b := s.buf[:0]
	var removed []runKey
	for _, k := range keys {
		if _, ok := s.live[k]; !ok {
			continue
		}
		var err error
		if b, err = appendRecord(b, recRemove, &plutov1.Result{RunId: k.id, Attempt: k.attempt}); err != nil {
			return fmt.Errorf("result store: %w", err)
		}
		removed = append(removed, k)
	}
	s.buf = b[:0]
	if len(removed) == 0 {
		return nil
	}
	if _, err := s.f.Write(b); err != nil {
		s.failedAppendLocked()
		return fmt.Errorf("result store: append tombstones: %w", err)
	}
	s.size += int64(len(b))
	s.deadBytes += int64(len(b))
	for _, k := range removed {
		n := int64(s.live[k])
		delete(s.live, k)
		s.liveBytes -= n
		s.deadBytes += n
	}
	if s.deadBytes >= s.compactMin && s.deadBytes >= s.liveBytes {
		if err := s.rewriteLocked(); err != nil {
			return fmt.Errorf("result store: compact: %w", err)
		}
	}
	return nil
}

// Close implements resultStore: it compacts the log (to just its magic
// when every result was delivered) and unlocks the directory.
func (s *fileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	var err error
	if s.deadBytes > 0 || s.dirty {
		if cerr := s.rewriteLocked(); cerr != nil {
			err = fmt.Errorf("result store: compact: %w", cerr)
		}
	}
	if cerr := s.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("result store: %w", cerr)
	}
	s.f = nil
	if cerr := s.lock.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("result store: unlock: %w", cerr)
	}
	return err
}

// rewriteLocked compacts the log: it reads it back, keeps the records of
// the live results and writes them to a new log.
func (s *fileStore) rewriteLocked() error {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	var recs []logRecord
	if len(data) >= len(resultLogMagic) {
		recs, _ = decodeRecords(data[len(resultLogMagic):])
	}
	var keep []logRecord
	for _, r := range replay(recs) {
		if _, ok := s.live[r.key()]; ok {
			keep = append(keep, r)
		}
	}
	if len(keep) != len(s.live) {
		// A result the store accepted is not in the log: never expected
		// (the log is only cut after a failed append), but do not
		// silently lose it.
		return fmt.Errorf("%d of %d live results missing from %s", len(s.live)-len(keep), len(s.live), s.path)
	}
	return s.compactLocked(keep)
}

// compactLocked replaces the log with one holding exactly live, crash-safe:
// write a temporary file, sync it, rename it over the log, sync the
// directory. Then it reopens the log for appending.
func (s *fileStore) compactLocked(live []logRecord) error {
	b := []byte(resultLogMagic)
	s.liveBytes = 0
	for _, r := range live {
		n := len(b)
		var err error
		if b, err = appendRecord(b, recResult, r.res); err != nil {
			return err
		}
		s.live[r.key()] = len(b) - n
		s.liveBytes += int64(len(b) - n)
	}
	tmp := s.path + ".tmp"
	if err := writeFileSync(tmp, b); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.f, s.size, s.deadBytes, s.dirty = f, int64(len(b)), 0, false
	return nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
