package worker

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// loadSampler measures the process's CPU use between two samples, from
// /proc/self/stat, and its resident memory from /proc/self/statm. On systems
// without /proc both read as zero.
type loadSampler struct {
	lastCPU  float64 // CPU seconds used by the process
	lastWall time.Time
}

// sample returns the CPU used since the previous sample as a fraction of one
// core (2.0 = two cores busy), and the resident set size in bytes.
func (s *loadSampler) sample() (cpu float64, rss uint64) {
	now := time.Now()
	used, ok := processCPUSeconds()
	if ok && !s.lastWall.IsZero() {
		if wall := now.Sub(s.lastWall).Seconds(); wall > 0 {
			cpu = max(0, (used-s.lastCPU)/wall)
		}
	}
	if ok {
		s.lastCPU, s.lastWall = used, now
	}
	return cpu, residentBytes()
}

// processCPUSeconds reads utime+stime of the process.
func processCPUSeconds() (float64, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	return parseStatCPU(b)
}

// parseStatCPU parses utime (field 14) and stime (field 15) of a
// /proc/<pid>/stat line. The command name (field 2) may contain spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatCPU(b []byte) (float64, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(ut+st) / clockTicks, true
}

// residentBytes reads the resident set size from /proc/self/statm.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	return parseStatm(b, uint64(os.Getpagesize()))
}

func parseStatm(b []byte, pageSize uint64) uint64 {
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * pageSize
}
