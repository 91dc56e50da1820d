// Package cron parses cron expressions and computes their fire times in a
// job's time zone.
//
//	s, err := cron.ParseIn("0 15 10 ? * 6L", loc) // 10:15 on the last Friday of every month
//	next := s.Next(time.Now())                    // strictly after; zero time: never again
//
// # Syntaxes
//
// The syntax is picked from the expression: a leading @ is a descriptor,
// 5 fields are standard (Unix, Vixie) cron, 6 or 7 fields are Quartz.
// Fields are separated by spaces or tabs; names and the letters L, W are
// case-insensitive.
//
//	syntax     fields                                                    day-of-week numbers
//	Quartz     sec min hour day-of-month month day-of-week [year]        1=SUN 2=MON … 7=SAT
//	standard   min hour day-of-month month day-of-week (second 0)        0=SUN 1=MON … 6=SAT, 7=SUN
//
//	field          values            both syntaxes            Quartz only
//	second         0-59              * a a-b a,b */n a/n a-b/n
//	minute         0-59              same
//	hour           0-23              same
//	day-of-month   1-31              same, ? (= *)            L, L-n (n 0-30), nW, LW, L-nW
//	month          1-12, JAN-DEC     same
//	day-of-week    see above, SUN-SAT same, ? (= *)           L (= SAT), dL (last d of the month), d#k (k-th d, k 1-5)
//	year           1970-2199         (Quartz, optional)       * a a-b a,b a/n …
//
// a/n is a-max/n; */n is min-max/n; a-b needs a <= b (no wrap-around). Lists
// may mix the other forms, e.g. "1,15,20W" or "2#1,3#2", but, as in Quartz,
// an item with L (L, LW, L-n, L-nW, dL) must stand alone in its field:
// "1,5,L" and "6,7,L" are errors. nW is the weekday nearest to day n
// without leaving the month (a Saturday 1st moves to Monday the 3rd, a
// Sunday last day to Friday); when the month has no day n, nW does not
// fire that month, like a plain n. LW is the last weekday of the month,
// L-nW the weekday nearest the n-th day before the last (L-3W in a month
// of 31 days: the weekday nearest the 28th).
//
// Day-of-month and day-of-week:
//   - Quartz: at most one of them may be restricted. The other is ? or *
//     (Quartz itself insists on ?; * is accepted too), and "* *" means
//     every day. Both ? is an error, and so is restricting both.
//   - standard: as Vixie cron, when both are restricted a day matches if
//     either does ("0 12 13 * FRI": every 13th and every Friday); when one
//     of them starts with * (including */n) both must match.
//
// Descriptors:
//
//	@yearly, @annually   0 0 0 1 1 ?      midnight, January 1st
//	@monthly             0 0 0 1 * ?      midnight, first of the month
//	@weekly              0 0 0 ? * SUN    midnight between Saturday and Sunday
//	@daily, @midnight    0 0 0 * * ?      midnight
//	@hourly              0 0 * * * ?      the start of every hour
//	@every D             D a Go duration > 0 (30s, 1h30m, 1.5s)
//
// @every D fires at the instants that are whole multiples of D since
// 1970-01-01T00:00:00Z: aligned on the Unix epoch, not on the time the job
// was created or last fired. Every server, restart and retry therefore
// computes the same slots (one fire per (job, logical time)),
// and "@every 1h" fires on the hour. The time zone plays no part, so DST
// does not stretch or shrink the interval; "@every 24h" fires at midnight
// UTC, while "@daily" fires at midnight in the job's zone.
//
// # Time zones and daylight saving time
//
// Calendar schedules (everything but @every) are read on the wall clock of
// the Schedule's location (ParseIn; Parse uses UTC). Next returns instants
// in that location; compare and store them as instants (t.UTC()). Fire
// times are whole seconds. Around a change of UTC offset:
//
//   - Gap (spring forward, e.g. 02:00 → 03:00): a matching wall time that
//     does not exist fires once, at the first instant after the gap (03:00
//     local), like Vixie cron which runs such jobs right after the change.
//     Several matching wall times inside the gap (0 0/15 2 * * ?) still
//     fire once, and if the gap's end matches too, that is the same fire.
//   - Overlap (fall back, e.g. 02:00 → 01:00): a matching wall time that
//     occurs twice fires at its first occurrence only ("0 30 1 * * ?" fires
//     at 01:30 daylight time, not again an hour later) — unless the hour
//     field matches every hour (*, 0-23, @hourly, "0 */5 * * * ?"): such
//     schedules fire at both occurrences, so they keep firing every real
//     hour, minute or second with no duplicate and no missing instant.
//
// This works for any offset change the zone database knows: 30-minute DST
// (Australia/Lord_Howe), changes at midnight (America/Santiago), skipped
// days (Pacific/Apia, 2011-12-30 fires once at 2011-12-31T00:00).
//
// The IANA database is embedded (time/tzdata) as a fallback for hosts
// without one.
//
// # Bounds
//
// Next never loops unboundedly: it searches at most 401 years ahead (the
// Gregorian calendar repeats every 400 years, so an expression such as
// "0 0 0 30 2 ?" that matches nothing in that window never will) and stops
// after the last year of a year field; either way it returns the zero time.
// It skips whole years, months, days, hours and minutes that cannot match,
// so a never-firing expression costs well under a millisecond. Instants
// beyond about ±10^8 years return the zero time.
//
// # Errors
//
// Parse errors are *ParseError, naming the field and its text:
//
//	cron: field 3 (hour) "25": value out of range 0-23
//	cron: "0 0 0 L * MON": day-of-month and day-of-week cannot both be set (use ? in one of them)
//
// # Why our own parser
//
// The obvious library is github.com/reugn/go-quartz. Version v0.15.2,
// checked against the cases above, gets several wrong: "0 30 2 * * ?" in
// America/New_York fires at 01:30 EST on the spring-forward day (a wall
// time that does not match), "0 0 * * * ?" skips a real hour on fall-back
// in both America/New_York and Europe/Berlin, and "0 0 0 30 2 ?" fires on
// March 2nd. It has no standard 5-field syntax either (Unix 0/7=SUN
// numbering would need a translation layer), so this package implements
// both syntaxes itself (under 1,000 lines), with table tests, a brute-force
// oracle across DST transitions and fuzzing.
package cron
