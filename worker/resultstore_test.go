package worker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

func testResult(id string, attempt int32) *plutov1.Result {
	return &plutov1.Result{
		RunId: id, Attempt: attempt, Outcome: plutov1.Outcome_OUTCOME_SUCCEEDED,
		Result: []byte(`{"id":"` + id + `"}`), StartedUnixMs: 1_700_000_000_000, FinishedUnixMs: 1_700_000_000_123,
	}
}

func mustOpen(t *testing.T, dir string) (*fileStore, storeLoad) {
	t.Helper()
	s, load, err := openFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, load
}

func ids(rs []*plutov1.Result) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.GetRunId()+"#"+strconv.Itoa(int(r.GetAttempt())))
	}
	return out
}

// readLog decodes the result log in dir as a new start would, without
// locking or repairing it: the results still to deliver, and the number of
// bytes after the valid records.
func readLog(t *testing.T, dir string) ([]*plutov1.Result, int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, resultLogName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte(resultLogMagic)) {
		t.Fatalf("log does not start with the magic: %q", data)
	}
	recs, valid := decodeRecords(data[len(resultLogMagic):])
	var out []*plutov1.Result
	for _, r := range replay(recs) {
		out = append(out, r.res)
	}
	return out, len(data) - len(resultLogMagic) - valid
}

func logSize(t *testing.T, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, resultLogName))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestFileStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b") // created on open
	s, load := mustOpen(t, dir)
	if len(load.results) != 0 || load.dropped != 0 {
		t.Fatalf("new store: %+v", load)
	}
	if got := logSize(t, dir); got != int64(len(resultLogMagic)) {
		t.Fatalf("new log is %d bytes, want just the magic", got)
	}
	in := []*plutov1.Result{testResult("r1", 1), testResult("r2", 3), testResult("r3", 1)}
	in[1].Outcome, in[1].Error, in[1].NoRetry = plutov1.Outcome_OUTCOME_FAILED, []byte("bad \u00e9"), true
	if err := s.Append(in[:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(in[2:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Append([]*plutov1.Result{testResult("r1", 1)}); err != nil { // the same attempt again: one result
		t.Fatal(err)
	}
	if err := s.Remove([]runKey{{"r2", 3}, {"r2", 1}, {"nope", 1}}); err != nil {
		t.Fatal(err)
	}
	if len(s.live) != 2 {
		t.Fatalf("%d results stored, want 2", len(s.live))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(in); !errors.Is(err, errStoreClosed) {
		t.Fatalf("Append after Close = %v", err)
	}

	_, load = mustOpen(t, dir)
	want := []*plutov1.Result{in[0], in[2]}
	if diff := cmp.Diff(want, load.results, protocmp.Transform()); diff != "" {
		t.Errorf("reopened (-want +got):\n%s", diff)
	}
	// Close compacted the log: the two live records and nothing else.
	var b []byte
	for _, r := range want {
		b, _ = appendRecord(b, recResult, r)
	}
	if got, want := logSize(t, dir), int64(len(resultLogMagic)+len(b)); got != want {
		t.Errorf("log is %d bytes after Close, want %d", got, want)
	}
}

// TestFileStoreTornTail cuts a log at every byte and damages its last
// record in several ways: a start keeps exactly the records before the
// damage, says how many bytes it ignored, and appends after them cleanly.
func TestFileStoreTornTail(t *testing.T) {
	src := t.TempDir()
	s, _ := mustOpen(t, src)
	var all []*plutov1.Result
	for i := range 3 {
		r := testResult("r"+strconv.Itoa(i), 1)
		all = append(all, r)
		if err := s.Append([]*plutov1.Result{r}); err != nil {
			t.Fatal(err)
		}
	}
	full, err := os.ReadFile(filepath.Join(src, resultLogName))
	if err != nil {
		t.Fatal(err)
	}
	// Record boundaries.
	ends := []int{len(resultLogMagic)}
	recs, _ := decodeRecords(full[len(resultLogMagic):])
	for _, r := range recs {
		ends = append(ends, ends[len(ends)-1]+r.size)
	}
	if len(recs) != 3 || ends[3] != len(full) {
		t.Fatalf("log: %d records, ends %v, %d bytes", len(recs), ends, len(full))
	}

	check := func(t *testing.T, data []byte, wantN int) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, resultLogName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, load, err := openFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if diff := cmp.Diff(all[:wantN], load.results, protocmp.Transform(), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("results (-want +got):\n%s", diff)
		}
		if want := int64(len(data) - ends[wantN]); load.dropped != want {
			t.Errorf("dropped = %d, want %d", load.dropped, want)
		}
		if got := logSize(t, dir); got != int64(ends[wantN]) {
			t.Errorf("log not cut back to its valid records: %d bytes, want %d", got, ends[wantN])
		}
		extra := testResult("extra", 1)
		if err := s.Append([]*plutov1.Result{extra}); err != nil {
			t.Fatal(err)
		}
		got, tail := readLog(t, dir)
		if diff := cmp.Diff(append(append([]*plutov1.Result{}, all[:wantN]...), extra), got, protocmp.Transform()); diff != "" || tail != 0 {
			t.Errorf("after an append: %d bytes of junk, results (-want +got):\n%s", tail, diff)
		}
	}

	t.Run("cut", func(t *testing.T) {
		for cut := len(resultLogMagic); cut <= len(full); cut++ {
			n := 0
			for n < 3 && ends[n+1] <= cut {
				n++
			}
			check(t, full[:cut], n)
		}
	})
	t.Run("bad crc", func(t *testing.T) {
		data := bytes.Clone(full)
		data[len(data)-1] ^= 0x40
		check(t, data, 2)
	})
	t.Run("bad length", func(t *testing.T) {
		data := bytes.Clone(full)
		data[ends[2]+3] = 0xff // length > maxRecordBytes
		check(t, data, 2)
	})
	t.Run("zeros", func(t *testing.T) {
		check(t, append(bytes.Clone(full), make([]byte, 4096)...), 3)
	})
	t.Run("garbage", func(t *testing.T) {
		check(t, append(bytes.Clone(full), "\x10\x00\x00\x00garbage-garbage-garbage"...), 3)
	})
}

func TestFileStoreCompaction(t *testing.T) {
	dir := t.TempDir()
	// A temporary file left by a compaction that crashed is ignored.
	if err := os.WriteFile(filepath.Join(dir, resultLogName+".tmp"), []byte("half a log"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := mustOpen(t, dir)
	if _, err := os.Stat(filepath.Join(dir, resultLogName+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temporary file: %v", err)
	}
	s.compactMin = 1
	var rs []*plutov1.Result
	var keys []runKey
	for i := range 10 {
		r := testResult("r"+strconv.Itoa(i), 1)
		rs = append(rs, r)
		keys = append(keys, runKey{r.RunId, 1})
	}
	if err := s.Append(rs); err != nil {
		t.Fatal(err)
	}
	before := logSize(t, dir)
	// Removing 4 of 10 leaves more live bytes than dead ones: no rewrite.
	if err := s.Remove(keys[:4]); err != nil {
		t.Fatal(err)
	}
	if got := logSize(t, dir); got <= before {
		t.Fatalf("log shrank from %d to %d bytes before the dead bytes exceeded the live ones", before, got)
	}
	// 8 of 10: rewritten with the last two only.
	if err := s.Remove(keys[4:8]); err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, r := range rs[8:] {
		b, _ = appendRecord(b, recResult, r)
	}
	if got, want := logSize(t, dir), int64(len(resultLogMagic)+len(b)); got != want {
		t.Fatalf("log is %d bytes after compaction, want %d", got, want)
	}
	got, tail := readLog(t, dir)
	if diff := cmp.Diff(ids(rs[8:]), ids(got)); diff != "" || tail != 0 {
		t.Errorf("compacted log: %d bytes of junk; results (-want +got):\n%s", tail, diff)
	}
	if _, err := os.Stat(filepath.Join(dir, resultLogName+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	// Appends go to the new log.
	if err := s.Append([]*plutov1.Result{testResult("late", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(keys[8:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, load := mustOpen(t, dir)
	if diff := cmp.Diff([]string{"late#2"}, ids(load.results)); diff != "" {
		t.Errorf("reopened (-want +got):\n%s", diff)
	}
}

func TestFileStoreRefusesForeignFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, resultLogName)
	if err := os.WriteFile(path, []byte("not a result log at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openFileStore(dir); err == nil {
		t.Fatal("opened a file that is not a result log")
	}
	if b, _ := os.ReadFile(path); string(b) != "not a result log at all" {
		t.Errorf("the foreign file was changed: %q", b)
	}
	// The lock was released: a good log opens now.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, dir)
}

func TestFileStoreLocked(t *testing.T) {
	if !haveDirLock {
		t.Skip("no directory lock on this platform")
	}
	dir := t.TempDir()
	s, _ := mustOpen(t, dir)
	if _, _, err := openFileStore(dir); !errors.Is(err, errStoreLocked) {
		t.Fatalf("second open = %v, want errStoreLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, dir)
}

// FuzzDecodeRecords: the decoder takes any bytes without panicking, its
// valid prefix decodes to the same records again, and a log it wrote reads
// back whole.
func FuzzDecodeRecords(f *testing.F) {
	var b []byte
	b, _ = appendRecord(b, recResult, testResult("r1", 1))
	b, _ = appendRecord(b, recRemove, &plutov1.Result{RunId: "r1", Attempt: 1})
	b, _ = appendRecord(b, recResult, &plutov1.Result{RunId: "r2", Attempt: 7, Error: []byte("x")})
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, valid := decodeRecords(data)
		if valid < 0 || valid > len(data) {
			t.Fatalf("valid = %d of %d bytes", valid, len(data))
		}
		n := 0
		for _, r := range recs {
			if r.kind != recResult && r.kind != recRemove || r.res.GetRunId() == "" || r.size <= recHeaderLen {
				t.Fatalf("bad record %+v", r)
			}
			n += r.size
		}
		if n != valid {
			t.Fatalf("records cover %d bytes, valid = %d", n, valid)
		}
		again, valid2 := decodeRecords(data[:valid])
		if valid2 != valid || len(again) != len(recs) {
			t.Fatalf("the valid prefix decodes differently: %d records/%d bytes, then %d/%d", len(recs), valid, len(again), valid2)
		}
		live := replay(recs)
		// Re-encoding what was read gives a log that reads back the same.
		var out []byte
		for _, r := range recs {
			var err error
			if out, err = appendRecord(out, r.kind, r.res); err != nil {
				t.Fatal(err)
			}
		}
		back, valid3 := decodeRecords(out)
		if valid3 != len(out) || len(back) != len(recs) {
			t.Fatalf("re-encoded log: %d of %d bytes valid, %d of %d records", valid3, len(out), len(back), len(recs))
		}
		for i := range back {
			if back[i].kind != recs[i].kind || !proto.Equal(back[i].res, recs[i].res) {
				t.Fatalf("record %d changed: %v → %v", i, recs[i].res, back[i].res)
			}
		}
		if len(replay(back)) != len(live) {
			t.Fatal("replay differs after re-encoding")
		}

		// data as the body of a record with a good checksum: the kind
		// byte and the protobuf decoding get the arbitrary bytes.
		if len(data) > 0 {
			framed := binary.LittleEndian.AppendUint32(nil, uint32(len(data)))
			framed = binary.LittleEndian.AppendUint32(framed, crc32.Checksum(data, castagnoli))
			framed = append(framed, data...)
			if recs, valid := decodeRecords(framed); valid != 0 && (len(recs) != 1 || valid != len(framed)) {
				t.Fatalf("one framed body: %d records, %d of %d bytes", len(recs), valid, len(framed))
			}
		}
	})
}
