package apitest

import (
	"syscall"
	"testing"
	"time"
)

// Meter measures a throughput benchmark: wall time and the CPU time the
// whole process used (server, background workers and, for HTTP benchmarks,
// the clients), from StartMeter to Report.
type Meter struct {
	start time.Time
	cpu   time.Duration
}

// StartMeter starts measuring now; call it right before the timed loop.
func StartMeter() Meter { return Meter{start: time.Now(), cpu: CPUTime()} }

// Report adds two metrics for n operations called unit: <unit>s/s (wall
// clock throughput) and cpu-us/<unit> (CPU time per operation, meaningful
// even on a shared, loaded machine, where throughput measures the share of
// the CPU the benchmark got).
func (m Meter) Report(b *testing.B, n int, unit string) {
	b.Helper()
	b.ReportMetric(float64(n)/time.Since(m.start).Seconds(), unit+"s/s")
	b.ReportMetric(float64((CPUTime()-m.cpu).Microseconds())/float64(n), "cpu-us/"+unit)
}

// CPUTime is the CPU time (user and system) this process has used.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
