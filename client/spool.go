package client

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The spool directory holds
//
//	lock        flocked by the process that uses the spool
//	spool.log   the log: the 8-byte header "PLSPOOL1", then records
//	spool.tmp   a compaction in progress (removed when the spool opens)
//	dead.jsonl  dead letters, one JSON object per line
//
// A record is
//
//	length  uint32, little endian: the length of body
//	crc     uint32, little endian: CRC-32C (Castagnoli) of body
//	body    kind (1 byte) | seq (uint64, little endian) | data
//
// Kind 1 (spec) holds a protobuf pluto.v1.RunSpec as data; the seq of
// successive specs increases. Kind 2 (done) has no data and says that every
// spec whose seq is at most its seq has left the spool (delivered or
// dead-lettered). The log is only appended to, each append fsynced before
// it is acknowledged; it is rewritten (a temporary file renamed over it)
// once the records it no longer needs outweigh the ones it does. Reading
// stops at the first record that is cut short or fails its checksum — the
// tail of a write that a crash interrupted, which was never acknowledged —
// and that tail is cut off.
const (
	spoolHeader  = "PLSPOOL1"
	spoolLog     = "spool.log"
	spoolTmp     = "spool.tmp"
	spoolLock    = "lock"
	spoolDead    = "dead.jsonl"
	recSpec      = 1
	recDone      = 2
	recFrameLen  = 8 // length + crc
	recBodyMin   = 9 // kind + seq
	maxRecordLen = maxMsgSize
)

// compactMin is how many bytes of records the log no longer needs before
// it is rewritten (also once they are more than half of it). A log whose
// every spec has left is rewritten at once, whatever its size.
var compactMin int64 = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errBadRecord = errors.New("pluto: spool: record cut short or corrupt")

// errSpoolLocked: another client holds the spool's lock.
var errSpoolLocked = errors.New("spool locked")

// errSpoolClosed is returned for work on a closed spool.
var errSpoolClosed = errors.New("pluto: spool is closed")

// record is one decoded log record. data aliases the decoded buffer.
type record struct {
	kind byte
	seq  uint64
	data []byte
}

// recordLen is the encoded length of a record with n bytes of data.
func recordLen(n int) int64 { return int64(recFrameLen + recBodyMin + n) }

// appendRecord appends the encoding of r to b.
func appendRecord(b []byte, r record) []byte {
	n := recBodyMin + len(r.data)
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = append(b, 0, 0, 0, 0) // crc, below
	b = append(b, r.kind)
	b = binary.LittleEndian.AppendUint64(b, r.seq)
	b = append(b, r.data...)
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+recFrameLen:], crcTable))
	return b
}

// decodeRecord decodes the record at the start of b and returns it with
// its encoded length. It fails with errBadRecord when b holds no whole,
// intact, well-formed record.
func decodeRecord(b []byte) (record, int, error) {
	if len(b) < recFrameLen {
		return record{}, 0, errBadRecord
	}
	n := binary.LittleEndian.Uint32(b)
	if n < recBodyMin || n > maxRecordLen || uint64(len(b)-recFrameLen) < uint64(n) {
		return record{}, 0, errBadRecord
	}
	body := b[recFrameLen : recFrameLen+int(n)]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return record{}, 0, errBadRecord
	}
	r := record{kind: body[0], seq: binary.LittleEndian.Uint64(body[1:]), data: body[recBodyMin:]}
	switch {
	case r.kind == recSpec && r.seq > 0:
	case r.kind == recDone && len(r.data) == 0:
	default:
		return record{}, 0, errBadRecord
	}
	return r, recFrameLen + int(n), nil
}

// spoolEntry is a spec waiting in the spool.
type spoolEntry struct {
	seq  uint64
	data []byte // protobuf pluto.v1.RunSpec
}

// parseLog reads the records of a log (after its header): the specs still
// waiting, in order, the highest seq seen (of a spec or a done record),
// and how many bytes of b hold intact records. Reading stops at the first
// record that is cut short, corrupt, or a spec whose seq does not increase.
func parseLog(b []byte) (live []spoolEntry, maxSeq uint64, good int) {
	var done, lastSpec uint64
	for good < len(b) {
		r, n, err := decodeRecord(b[good:])
		if err != nil {
			break
		}
		if r.kind == recSpec {
			if r.seq <= lastSpec {
				break
			}
			lastSpec = r.seq
			live = append(live, spoolEntry{seq: r.seq, data: r.data})
		} else {
			done = max(done, r.seq)
		}
		maxSeq = max(maxSeq, r.seq)
		good += n
	}
	i := 0
	for i < len(live) && live[i].seq <= done {
		i++
	}
	return live[i:], maxSeq, good
}

// spool is the on-disk queue of specs that no server took yet.
type spool struct {
	dir  string
	lock *os.File

	mu      sync.Mutex
	f       *os.File // spool.log
	size    int64    // of f
	garbage int64    // bytes of f's records no longer needed
	live    []spoolEntry
	nextSeq uint64
	changed chan struct{} // closed (and replaced) when specs leave
	closed  bool
	dead    *os.File // dead.jsonl, opened on first use
}

// openSpool opens (creating it if needed) the spool in dir and locks it.
func openSpool(dir string) (*spool, error) {
	if dir == "" {
		return nil, errors.New("pluto: spool: empty directory name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pluto: spool: %w", err)
	}
	lockPath := filepath.Join(dir, spoolLock)
	lock, err := lockFile(lockPath)
	if errors.Is(err, errSpoolLocked) {
		return nil, fmt.Errorf("pluto: spool %s is in use by another process or client (%s is locked; one client per spool directory): %w", dir, lockPath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pluto: spool: lock %s: %w", lockPath, err)
	}
	s := &spool{dir: dir, lock: lock}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// load reads the log, cuts off a torn tail and removes a leftover
// compaction.
func (s *spool) load() error {
	if err := os.Remove(filepath.Join(s.dir, spoolTmp)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pluto: spool: %w", err)
	}
	path := filepath.Join(s.dir, spoolLog)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("pluto: spool: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		return fmt.Errorf("pluto: spool: %w", err)
	}
	if len(b) < len(spoolHeader) && string(b) == spoolHeader[:len(b)] {
		// New, or its creation was cut short: start it (again).
		if err := writeSync(f, []byte(spoolHeader), 0, int64(len(b))); err != nil {
			f.Close()
			return err
		}
		b = []byte(spoolHeader)
	}
	if len(b) < len(spoolHeader) || string(b[:len(spoolHeader)]) != spoolHeader {
		f.Close()
		return fmt.Errorf("pluto: spool: %s is not a spool log (bad header)", path)
	}
	live, maxSeq, good := parseLog(b[len(spoolHeader):])
	size := int64(len(spoolHeader) + good)
	if size < int64(len(b)) {
		// A torn tail: a write that a crash cut short was never
		// acknowledged. Cut it off so that appends follow intact records.
		if err := f.Truncate(size); err != nil {
			f.Close()
			return fmt.Errorf("pluto: spool: cut torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("pluto: spool: %w", err)
		}
	}
	var liveBytes int64
	for _, e := range live {
		liveBytes += recordLen(len(e.data))
	}
	s.f, s.size, s.live, s.nextSeq = f, size, live, maxSeq+1
	s.garbage = size - int64(len(spoolHeader)) - liveBytes
	s.changed = make(chan struct{})
	return nil
}

// writeSync writes b at off, fsyncs, and on failure cuts the file back to
// restore (its size before the write).
func writeSync(f *os.File, b []byte, off, restore int64) error {
	_, err := f.WriteAt(b, off)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		_ = f.Truncate(restore)
		return fmt.Errorf("pluto: spool: write: %w", err)
	}
	return nil
}

// append adds specs to the tail of the spool, durably.
func (s *spool) append(datas [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSpoolClosed
	}
	var buf []byte
	entries := make([]spoolEntry, len(datas))
	for i, d := range datas {
		if recBodyMin+len(d) > maxRecordLen {
			return fmt.Errorf("pluto: spool: run %d is %d bytes, over the spool's limit of %d", i, len(d), maxRecordLen-recBodyMin)
		}
		entries[i] = spoolEntry{seq: s.nextSeq + uint64(i), data: d}
		buf = appendRecord(buf, record{kind: recSpec, seq: entries[i].seq, data: d})
	}
	if err := writeSync(s.f, buf, s.size, s.size); err != nil {
		return err
	}
	s.size += int64(len(buf))
	s.nextSeq += uint64(len(datas))
	s.live = append(s.live, entries...)
	return nil
}

// head returns up to maxN specs from the head of the spool, together not
// much over maxBytes (at least one).
func (s *spool) head(maxN int, maxBytes int) []spoolEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []spoolEntry
	size := 0
	for _, e := range s.live {
		if len(out) == maxN || len(out) > 0 && size+len(e.data) > maxBytes {
			break
		}
		out = append(out, e)
		size += len(e.data)
	}
	return out
}

// remove durably takes the first n specs off the spool; entry is the last
// of them, as head returned it.
func (s *spool) remove(n int, last spoolEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSpoolClosed
	}
	if n <= 0 || n > len(s.live) || s.live[n-1].seq != last.seq {
		return fmt.Errorf("pluto: spool: remove %d up to seq %d: not the head", n, last.seq)
	}
	var freed int64
	for _, e := range s.live[:n] {
		freed += recordLen(len(e.data))
	}
	rest := s.live[n:]
	garbage := s.garbage + freed
	if len(rest) == 0 || garbage >= compactMin && 2*garbage > s.size {
		if err := s.compactLocked(rest); err == nil {
			s.dropLocked(n, true)
			return nil
		}
		// The log stays as it was; record the removal in it instead.
	}
	buf := appendRecord(nil, record{kind: recDone, seq: last.seq})
	if err := writeSync(s.f, buf, s.size, s.size); err != nil {
		return err
	}
	s.size += int64(len(buf))
	s.garbage = garbage + int64(len(buf))
	s.dropLocked(n, false)
	return nil
}

// dropLocked forgets the first n specs; realloc copies the rest to a new
// slice, so that the old one's memory can go.
func (s *spool) dropLocked(n int, realloc bool) {
	clear(s.live[:n]) // let the data go
	s.live = s.live[n:]
	if realloc && len(s.live) > 0 {
		s.live = append(make([]spoolEntry, 0, len(s.live)), s.live...)
	}
	if len(s.live) == 0 {
		s.live = nil
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// compactLocked replaces the log by one holding only rest.
func (s *spool) compactLocked(rest []spoolEntry) (err error) {
	tmp := filepath.Join(s.dir, spoolTmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("pluto: spool: compact: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	size := int64(len(spoolHeader))
	_, _ = w.WriteString(spoolHeader)
	var buf []byte
	for _, e := range rest {
		buf = appendRecord(buf[:0], record{kind: recSpec, seq: e.seq, data: e.data})
		_, _ = w.Write(buf)
		size += int64(len(buf))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("pluto: spool: compact: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("pluto: spool: compact: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, spoolLog)); err != nil {
		return fmt.Errorf("pluto: spool: compact: %w", err)
	}
	// The rename happened, so f is the log now. Should the directory not
	// reach the disk, a crash brings the old log back, whose extra specs
	// are then resent: their keys make that harmless.
	_ = syncDir(s.dir)
	s.f.Close()
	s.f, s.size, s.garbage = f, size, 0
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// len is the number of specs in the spool.
func (s *spool) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// tailSeq is the seq of the last spec appended (0: none yet).
func (s *spool) tailSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSeq - 1
}

// progress returns a channel closed when specs next leave the spool, the
// seq of the spec at its head and the number of specs it holds.
func (s *spool) progress() (changed <-chan struct{}, head uint64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.live) > 0 {
		head = s.live[0].seq
	}
	return s.changed, head, len(s.live)
}

// deadLetter is one line of dead.jsonl.
type deadLetter struct {
	Time  time.Time `json:"time"`
	Error string    `json:"error"`
	// Run is the spec in the shape of a POST /api/v1/runs body.
	Run *specJSON `json:"run,omitempty"`
	// Record is the spooled record, base64, when it could not be decoded.
	Record string `json:"record,omitempty"`
}

// specJSON is a RunSpec as the HTTP API takes it.
type specJSON struct {
	Type       string          `json:"type"`
	Group      string          `json:"group"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	Priority   int             `json:"priority,omitempty"`
	Delay      string          `json:"delay,omitempty"`
	RunAt      *time.Time      `json:"run_at,omitempty"`
	Timeout    string          `json:"timeout,omitempty"`
	Retries    int             `json:"retries,omitempty"`
	Key        string          `json:"key,omitempty"`
	Routing    string          `json:"routing,omitempty"`
	RoutingKey string          `json:"routing_key,omitempty"`
	Job        string          `json:"job,omitempty"`
	// CallbackURL: see RunSpec.CallbackURL.
	CallbackURL string `json:"callback_url,omitempty"`
}

func toSpecJSON(s *RunSpec) *specJSON {
	j := &specJSON{
		Type: s.Type, Group: s.Group, Priority: s.Priority, Retries: s.Retries, Key: s.Key,
		Routing: s.Routing, RoutingKey: s.RoutingKey, Job: s.Job, RunAt: optTime(s.RunAt),
		CallbackURL: s.CallbackURL,
	}
	if raw, ok := s.Payload.(json.RawMessage); ok && len(raw) > 0 {
		j.Payload = raw
	}
	if s.Delay != 0 {
		j.Delay = formatDuration(s.Delay)
	}
	if s.Timeout != 0 {
		j.Timeout = formatDuration(s.Timeout)
	}
	return j
}

// writeDead appends a dead letter to dead.jsonl, durably. spec is nil when
// the record could not be decoded.
func (s *spool) writeDead(e spoolEntry, spec *RunSpec, cause error) error {
	d := deadLetter{Time: time.Now().UTC(), Error: cause.Error()}
	if spec != nil {
		d.Run = toSpecJSON(spec)
	} else {
		d.Record = base64.StdEncoding.EncodeToString(e.data)
	}
	line, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("pluto: spool: dead letter: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSpoolClosed
	}
	if s.dead == nil {
		f, err := os.OpenFile(filepath.Join(s.dir, spoolDead), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("pluto: spool: dead letter: %w", err)
		}
		s.dead = f
	}
	if _, err := s.dead.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("pluto: spool: dead letter: %w", err)
	}
	if err := s.dead.Sync(); err != nil {
		return fmt.Errorf("pluto: spool: dead letter: %w", err)
	}
	return nil
}

// close closes the files and releases the lock.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	errs := []error{s.f.Close()}
	if s.dead != nil {
		errs = append(errs, s.dead.Close())
	}
	errs = append(errs, s.lock.Close()) // releases the flock
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pluto: spool: close: %w", err)
	}
	return nil
}
