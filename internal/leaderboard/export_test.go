package leaderboard

// Bucket and Group expose the score histogram's bucket and group maps to
// the benchmarks, which seed scores with bulk inserts.
var (
	Bucket = bucket
	Group  = group
)
