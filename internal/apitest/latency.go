package apitest

import (
	"slices"
	"testing"
	"time"
)

// MeasureLatency runs read b.N times and reports its median and 99th
// percentile latency (p50-µs, p99-µs): benchmarks of reads use it.
func MeasureLatency(b *testing.B, read func() error) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := read(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds()), "p99-µs")
}
