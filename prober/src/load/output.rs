//! What a load run writes: the summary (text like k6's, and `--json`), the HdrHistogram
//! percentile distribution (`--hgrm`, the `.hgrm` text that HdrHistogram's plotters read) and the
//! HdrHistogram interval log (`--log`, one line per second per histogram, readable by any
//! HdrHistogram library).

use std::{collections::BTreeMap, fmt::Write as _, io::Write, path::Path, time::Duration};

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use hdrhistogram::{
    Histogram,
    serialization::{V2DeflateSerializer, interval_log},
};
use scenarios::Outcome;

use super::{
    plan::Counters,
    stats::{Latency, SeriesStats, Stats},
    thresholds::Verdict,
};

/// One series in the summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesSummary {
    pub name: String,
    /// `journey`, `step` or `request`.
    pub kind: &'static str,
    pub count: u64,
    /// Completed per second over the run.
    pub rate: f64,
    pub errors: u64,
    pub error_rate: f64,
    /// Count per outcome class (only classes that occurred).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// From the intended start (corrected for coordinated omission), ms.
    pub latency_ms: Latency,
    /// From the actual send, ms.
    pub uncorrected_latency_ms: Latency,
}

/// The whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub run_id: String,
    /// `journey` or `url`.
    pub mode: &'static str,
    pub target: String,
    pub profile: String,
    /// e.g. `open 1000/s for 10s`, `closed 50 vus`.
    pub model: String,
    pub shard: String,
    pub elapsed_s: f64,
    pub arrivals: Counters,
    /// Iterations still running when the run ended (abandoned after the grace period).
    pub unfinished: u64,
    pub series: Vec<SeriesSummary>,
    /// Open model: how late sends left against their intended start (timer, scheduling), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lateness_ms: Option<Latency>,
    /// Open model: started arrivals per second between the first and the last start (the plan's
    /// rate, if the scheduler kept up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achieved_rate: Option<f64>,
    pub thresholds: Vec<Verdict>,
    /// Journeys: what waited for the politeness caps, when anything did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttled: Option<String>,
}

impl SeriesSummary {
    pub fn of(name: &str, kind: &'static str, s: &SeriesStats, elapsed: Duration) -> SeriesSummary {
        let counts = s.counts();
        let count = s.count();
        let errors = s.errors();
        let merged = s.merged();
        SeriesSummary {
            name: name.to_owned(),
            kind,
            count,
            rate: count as f64 / elapsed.as_secs_f64().max(1e-9),
            errors,
            error_rate: if count == 0 { 0.0 } else { errors as f64 / count as f64 },
            outcomes: Outcome::ALL.iter().zip(counts).filter(|(_, c)| *c > 0).map(|(o, c)| (o.as_str(), c)).collect(),
            latency_ms: Latency::of(&merged.corrected),
            uncorrected_latency_ms: Latency::of(&merged.uncorrected),
        }
    }
}

pub fn series_summaries(
    names: &[String],
    first_kind: &'static str,
    totals: &Stats,
    elapsed: Duration,
) -> Vec<SeriesSummary> {
    names
        .iter()
        .zip(&totals.series)
        .enumerate()
        .map(|(i, (n, s))| SeriesSummary::of(n, if i == 0 { first_kind } else { "step" }, s, elapsed))
        .collect()
}

fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.2}s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}ms")
    } else {
        format!("{v:.2}ms")
    }
}

/// The text summary (stdout).
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n  {} {}  ·  profile {}  ·  {}  ·  run {}", s.mode, s.target, s.profile, s.model, s.run_id);
    if s.shard != "0/1" {
        let _ = writeln!(out, "  shard {}", s.shard);
    }
    let a = &s.arrivals;
    let _ = writeln!(
        out,
        "  {:.1}s  ·  scheduled {}  started {}  late {}  dropped {}{}\n",
        s.elapsed_s,
        a.scheduled,
        a.started,
        a.late,
        a.dropped,
        if s.unfinished > 0 { format!("  unfinished {}", s.unfinished) } else { String::new() }
    );
    if let Some(t) = &s.throttled {
        let _ = writeln!(out, "  {t}\n");
    }
    if let (Some(l), Some(r)) = (&s.send_lateness_ms, s.achieved_rate) {
        let _ = writeln!(
            out,
            "  arrivals started at {r:.2}/s; send lateness p50 {} p99 {} max {}\n",
            ms(l.p50),
            ms(l.p99),
            ms(l.max)
        );
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(["", "count", "rate/s", "errors", "min", "p50", "p90", "p95", "p99", "max", "p99 uncorr."]);
    let right = |v: String| Cell::new(v).set_alignment(CellAlignment::Right);
    for x in &s.series {
        let l = &x.latency_ms;
        let name = if x.kind == "step" { format!("  {}", x.name) } else { x.name.clone() };
        let errors =
            if x.errors == 0 { "0".to_owned() } else { format!("{} ({:.2}%)", x.errors, x.error_rate * 100.0) };
        t.add_row(vec![
            Cell::new(name),
            right(x.count.to_string()),
            right(format!("{:.1}", x.rate)),
            right(errors),
            right(ms(l.min)),
            right(ms(l.p50)),
            right(ms(l.p90)),
            right(ms(l.p95)),
            right(ms(l.p99)),
            right(ms(l.max)),
            right(ms(x.uncorrected_latency_ms.p99)),
        ]);
    }
    out.push_str(&t.to_string());
    out.push_str("\n  latency from each iteration's intended start (corrected for coordinated omission)\n");
    for x in &s.series {
        let failed: Vec<String> =
            x.outcomes.iter().filter(|(o, _)| !report::is_good(o)).map(|(o, c)| format!("{o} {c}")).collect();
        if !failed.is_empty() {
            let _ = writeln!(out, "  errors in {}: {}", x.name, failed.join(", "));
        }
    }
    if !s.thresholds.is_empty() {
        out.push_str("\n  thresholds\n");
        for v in &s.thresholds {
            let _ = writeln!(out, "  {} {}  (observed {})", if v.passed { "✓" } else { "✗" }, v.threshold, v.observed);
        }
    }
    out
}

/// Writes the summary as JSON.
pub fn write_json(path: &Path, s: &Summary) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(s).expect("the summary serializes");
    text.push('\n');
    std::fs::write(path, text)
}

/// The HdrHistogram percentile distribution (`outputPercentileDistribution` in the Java library,
/// values in milliseconds, 5 ticks per half distance), the format HdrHistogram's plotter reads.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / 1000.0;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10} {:14.2}", 1.0 / (1.0 - q));
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, sd, max) =
        if h.is_empty() { (0.0, 0.0, 0.0) } else { (h.mean() / 1000.0, h.stdev() / 1000.0, h.max() as f64 / 1000.0) };
    let _ = writeln!(out, "#[Mean    = {mean:12.3}, StdDeviation   = {sd:12.3}]");
    let _ = writeln!(out, "#[Max     = {max:12.3}, Total count    = {:12}]", h.len());
    let _ = writeln!(out, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), h.distinct_values());
    out
}

/// `--hgrm FILE`: the iteration's corrected distribution at FILE, the uncorrected one beside it
/// (`FILE` with `.uncorrected` before the extension).
pub fn write_hgrm(path: &Path, totals: &Stats) -> std::io::Result<()> {
    let merged = totals.series[0].merged();
    std::fs::write(path, hgrm(&merged.corrected))?;
    std::fs::write(uncorrected_path(path), hgrm(&merged.uncorrected))
}

pub fn uncorrected_path(path: &Path) -> std::path::PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!("{stem}.uncorrected{ext}"))
}

/// `--log FILE`: an HdrHistogram interval log (the Java `HistogramLogWriter` format, V2 DEFLATE
/// histograms). Per interval: the iteration's corrected histogram untagged, its uncorrected one
/// tagged `uncorrected`, and each step's corrected one tagged `step:NAME`.
pub struct IntervalLog {
    file: std::io::BufWriter<std::fs::File>,
    serializer: V2DeflateSerializer,
    tags: Vec<String>,
}

impl IntervalLog {
    pub fn create(
        path: &Path,
        start: std::time::SystemTime,
        names: &[String],
        what: &str,
    ) -> std::io::Result<IntervalLog> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut serializer = V2DeflateSerializer::new();
        interval_log::IntervalLogWriterBuilder::new()
            .add_comment(&format!("prober load {what}"))
            .add_comment("values in microseconds; untagged = iteration latency from the intended start (corrected)")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut file, &mut serializer)?;
        file.write_all(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")?;
        // Tags may not hold spaces or commas.
        let tags = names
            .iter()
            .map(|n| {
                format!(
                    "step:{}",
                    n.chars()
                        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
                        .collect::<String>()
                )
            })
            .collect();
        Ok(IntervalLog { file, serializer, tags })
    }

    /// Writes one interval (`since_start` = its start, from the run's start).
    pub fn write(&mut self, interval: &Stats, since_start: Duration, length: Duration) -> std::io::Result<()> {
        let mut w =
            interval_log::IntervalLogWriterBuilder::new().begin_log_with(&mut self.file, &mut self.serializer)?;
        let err = |e| std::io::Error::other(format!("{e:?}"));
        let first = interval.series[0].merged();
        w.write_histogram(&first.corrected, since_start, length, None).map_err(err)?;
        w.write_histogram(&first.uncorrected, since_start, length, interval_log::Tag::new("uncorrected"))
            .map_err(err)?;
        for (i, s) in interval.series.iter().enumerate().skip(1) {
            let m = s.merged();
            w.write_histogram(&m.corrected, since_start, length, interval_log::Tag::new(&self.tags[i])).map_err(err)?;
        }
        drop(w);
        self.file.flush()
    }
}
