package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcUsage is what /proc says about one process.
type ProcUsage struct {
	RSS, HWM int64   // VmRSS and VmHWM in bytes
	CPU      float64 // utime + stime in seconds
}

// ReadProc reads /proc/PID/status (VmRSS, VmHWM) and /proc/PID/stat
// (utime, stime) of a running process.
func ReadProc(pid int) (ProcUsage, error) {
	var u ProcUsage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	if u.RSS, u.HWM, err = ParseStatus(status); err != nil {
		return u, fmt.Errorf("read /proc/%d/status: %w", pid, err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	if u.CPU, err = ParseStat(stat); err != nil {
		return u, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return u, nil
}

// ParseStatus returns VmRSS and VmHWM, in bytes, from the text of
// /proc/PID/status ("VmRSS:\t  1234 kB" lines).
func ParseStatus(status []byte) (rss, hwm int64, err error) {
	found := 0
	for _, line := range bytes.Split(status, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		var dst *int64
		switch string(f[0]) {
		case "VmRSS:":
			dst = &rss
		case "VmHWM:":
			dst = &hwm
		default:
			continue
		}
		kb, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, 0, fmt.Errorf("bad %s %q", f[0], f[1])
		}
		*dst = kb << 10
		found++
	}
	if found < 2 {
		return 0, 0, errors.New("no VmRSS and VmHWM (a kernel thread or a zombie?)")
	}
	return rss, hwm, nil
}

// ParseStat returns utime + stime, in seconds, from the text of
// /proc/PID/stat.
func ParseStat(stat []byte) (float64, error) {
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := bytes.Fields(stat[i+1:])
	// After ')' come state (field 3) … utime (field 14), stime (field 15).
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 63)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 63)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime %q or stime %q", f[11], f[12])
	}
	return float64(utime+stime) / clockTicks, nil
}
