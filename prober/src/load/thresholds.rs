//! Pass/fail criteria for a load run: `--threshold 'checkout:p95<2s'`, `--threshold 'errors<1%'`.
//!
//! Grammar: `[SCOPE:]METRIC OP VALUE[UNIT]`.
//! - SCOPE: a step name, or the journey's name; absent = the whole iteration (journey or request).
//! - METRIC: `p50`, `p95`, `p99.9` … (any percentile), `min`, `mean`/`avg`, `max`: latency from
//!   the intended start (corrected), in `us`, `ms` (the default) or `s`; `errors` (failed
//!   iterations of the scope: `%` of them, or a count); `dropped` and `late` (arrivals of the run,
//!   `%` of scheduled, or a count); `rate` (achieved iterations per second); `count`.
//! - OP: `<`, `<=`, `>`, `>=`.
//!
//! A failed threshold makes `prober load` exit 1 (so CI can gate on it); a malformed one exits 2.

use std::{fmt, str::FromStr};

use super::{plan::Counters, stats::SeriesStats};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A quantile in 0..=1 (min = 0, max = 1).
    Latency(f64),
    Mean,
    Errors,
    Dropped,
    Late,
    Rate,
    Count,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// One threshold, as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What the user wrote.
    pub source: String,
    pub scope: Option<String>,
    pub metric: Metric,
    pub op: Op,
    /// Milliseconds for latencies; a fraction (0..1) when `percent`; else a plain number.
    pub limit: f64,
    pub percent: bool,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(s: &str) -> Result<Threshold, String> {
        let src = s.trim();
        let help = "write [SCOPE:]METRIC OP VALUE, e.g. `checkout:p95<2s` or `errors<1%`";
        let pos = src.find(['<', '>']).ok_or_else(|| format!("threshold `{src}` has no < or >: {help}"))?;
        let (lhs, rest) = src.split_at(pos);
        let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Op::Lt, v)
        } else {
            (Op::Gt, &rest[1..])
        };
        let (scope, metric) = match lhs.rsplit_once(':') {
            Some((s, m)) if !s.trim().is_empty() => (Some(s.trim().to_owned()), m.trim()),
            Some((_, m)) => (None, m.trim()),
            None => (None, lhs.trim()),
        };
        let metric = match metric.to_ascii_lowercase().as_str() {
            "min" => Metric::Latency(0.0),
            "max" => Metric::Latency(1.0),
            "med" | "median" => Metric::Latency(0.5),
            "mean" | "avg" => Metric::Mean,
            "errors" | "error_rate" => Metric::Errors,
            "dropped" => Metric::Dropped,
            "late" => Metric::Late,
            "rate" => Metric::Rate,
            "count" => Metric::Count,
            m if m.starts_with('p') => {
                let q: f64 = m[1..].parse().map_err(|_| format!("threshold `{src}`: unknown metric `{m}`: {help}"))?;
                if !(0.0..=100.0).contains(&q) {
                    return Err(format!("threshold `{src}`: percentile {q} is not between 0 and 100"));
                }
                Metric::Latency(q / 100.0)
            }
            m => {
                return Err(format!(
                    "threshold `{src}`: unknown metric `{m}` (use pNN, min, mean, max, errors, dropped, late, rate, count)"
                ));
            }
        };
        let value = value.trim();
        let split = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
        let (num, unit) = value.split_at(split);
        let num: f64 =
            num.parse().map_err(|_| format!("threshold `{src}`: `{value}` is not a number with a unit: {help}"))?;
        let unit = unit.trim();
        let (limit, percent) = match (metric, unit) {
            (Metric::Latency(_) | Metric::Mean, "" | "ms") => (num, false),
            (Metric::Latency(_) | Metric::Mean, "s") => (num * 1000.0, false),
            (Metric::Latency(_) | Metric::Mean, "us" | "µs") => (num / 1000.0, false),
            (Metric::Errors | Metric::Dropped | Metric::Late, "%") => (num / 100.0, true),
            (Metric::Errors | Metric::Dropped | Metric::Late | Metric::Count, "") => (num, false),
            (Metric::Rate, "" | "/s") => (num, false),
            _ => return Err(format!("threshold `{src}`: unit `{unit}` does not fit this metric: {help}")),
        };
        if matches!(metric, Metric::Dropped | Metric::Late) && scope.is_some() {
            return Err(format!("threshold `{src}`: `dropped` and `late` count whole iterations; drop the scope"));
        }
        Ok(Threshold { source: src.to_owned(), scope, metric, op, limit, percent })
    }
}

/// How a threshold fared.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub threshold: String,
    pub observed: String,
    pub passed: bool,
}

impl Threshold {
    /// Checks the scope names a series (`names[0]` is the iteration, the rest the steps).
    pub fn series_index(&self, names: &[String]) -> Result<usize, String> {
        match &self.scope {
            None => Ok(0),
            Some(s) => names.iter().position(|n| n == s).ok_or_else(|| {
                format!("threshold `{}`: no step or journey named `{s}` (there are: {})", self.source, names.join(", "))
            }),
        }
    }

    /// Evaluates against a series' totals and the run's counters, over `elapsed_s` seconds.
    pub fn evaluate(&self, series: &SeriesStats, counters: &Counters, elapsed_s: f64) -> Verdict {
        let merged = series.merged();
        let h = &merged.corrected;
        let count = series.count() as f64;
        let of = |n: u64, d: u64| if self.percent { if d == 0 { 0.0 } else { n as f64 / d as f64 } } else { n as f64 };
        let observed = match self.metric {
            Metric::Latency(q) => super::stats::Latency::quantile_ms(h, q),
            Metric::Mean => h.mean() / 1000.0,
            Metric::Errors => of(series.errors(), series.count()),
            Metric::Dropped => of(counters.dropped, counters.scheduled),
            Metric::Late => of(counters.late, counters.scheduled),
            Metric::Rate => count / elapsed_s.max(1e-9),
            Metric::Count => count,
        };
        let passed = self.op.holds(observed, self.limit);
        let shown = match self.metric {
            Metric::Latency(_) | Metric::Mean => format!("{observed:.3} ms"),
            _ if self.percent => format!("{:.3} %", observed * 100.0),
            Metric::Rate => format!("{observed:.2}/s"),
            _ => format!("{observed}"),
        };
        Verdict { threshold: self.source.clone(), observed: shown, passed }
    }
}

impl Op {
    pub fn symbol(self) -> &'static str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use scenarios::Outcome;

    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let t: Threshold = "checkout:p95<2s".parse().unwrap();
        assert_eq!(
            (t.scope.as_deref(), t.metric, t.op, t.limit),
            (Some("checkout"), Metric::Latency(0.95), Op::Lt, 2000.0)
        );
        let t: Threshold = "errors<1%".parse().unwrap();
        assert_eq!((t.scope, t.metric, t.limit, t.percent), (None, Metric::Errors, 0.01, true));
        let t: Threshold = "p99.9 <= 250ms".parse().unwrap();
        assert!(matches!(t.metric, Metric::Latency(q) if (q - 0.999).abs() < 1e-12), "{t:?}");
        assert_eq!((t.op, t.limit), (Op::Le, 250.0));
        let t: Threshold = "rate>=95".parse().unwrap();
        assert_eq!((t.metric, t.op, t.limit), (Metric::Rate, Op::Ge, 95.0));
        let t: Threshold = "max<500us".parse().unwrap();
        assert_eq!(t.limit, 0.5);
    }

    #[test]
    fn refuses_what_it_cannot_mean() {
        for bad in ["p95", "p95<fast", "p150<1s", "latency<1s", "errors<1s", "checkout:dropped<1%", "p95<2%"] {
            assert!(bad.parse::<Threshold>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn evaluates_latency_and_error_rates() {
        let mut s = SeriesStats::default();
        for i in 0..100u64 {
            let o = if i < 3 { Outcome::GatewayError } else { Outcome::Ok };
            s.record(o, Duration::from_millis(10 + i), Duration::from_millis(10));
        }
        let c = Counters { scheduled: 100, started: 100, late: 0, dropped: 0 };
        let v = |t: &str| t.parse::<Threshold>().unwrap().evaluate(&s, &c, 10.0).passed;
        assert!(v("p50<100ms") && !v("p99<100ms") && v("p99<2s"));
        assert!(!v("errors<1%") && v("errors<5%") && v("errors<=3"));
        assert!(v("rate>=10") && !v("rate>10") && v("dropped<1%"));
    }
}
