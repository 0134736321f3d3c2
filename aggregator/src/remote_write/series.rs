//! The pure part of remote write: the `/metrics` exposition (OpenMetrics text, as
//! [`crate::web::exposition`] renders it) as remote-write series, and those in compressed batches.
//!
//! Reading the exposition rather than the collectors keeps one home for the series set: what a
//! scrape of `/metrics` would store is exactly what is written (run counters as `…_total`,
//! duration histograms as classic `_bucket{le}`/`_sum`/`_count`, the SLO gauges, the prober
//! status, the aggregator's own health), with the same names, labels and values.

use prost::Message as _;

use super::proto::{Label, Sample, TimeSeries, WriteRequest};

/// Most series (one sample each) in one request: what Prometheus' own sender puts in one by
/// default (`max_samples_per_send`), well below receivers' limits.
pub const MAX_SERIES_PER_REQUEST: usize = 2_000;

/// How the exposition's labels become a written series' labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelRules {
    /// The replica's name and the label it goes under (`replica`, `__replica__`); the
    /// exposition's own `replica` label is replaced by it.
    pub replica: Option<(String, String)>,
    /// Added to a series that does not have the label already (a series label always wins).
    pub external: Vec<(String, String)>,
}

/// One line of the exposition that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exposition line {line}: {what}")]
pub struct ParseError {
    pub line: usize,
    pub what: &'static str,
}

/// Every sample of `text` as a series with one sample at `at_ms`; labels sorted by name.
pub fn series(text: &str, rules: &LabelRules, at_ms: i64) -> Result<Vec<TimeSeries>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |what| ParseError { line: i + 1, what };
        let (name, labels, value) = sample_line(line).map_err(err)?;
        let mut l: Vec<Label> = Vec::with_capacity(labels.len() + 2 + rules.external.len());
        l.push(Label { name: "__name__".into(), value: name.to_owned() });
        for (k, v) in labels {
            if rules.replica.is_some() && k == crate::metrics::REPLICA_LABEL {
                continue;
            }
            // Prometheus treats an empty label as absent.
            if !v.is_empty() {
                l.push(Label { name: k.to_owned(), value: v });
            }
        }
        if let Some((label, name)) = &rules.replica {
            l.push(Label { name: label.clone(), value: name.clone() });
        }
        for (k, v) in &rules.external {
            if !l.iter().any(|x| x.name == *k) {
                l.push(Label { name: k.clone(), value: v.clone() });
            }
        }
        l.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        out.push(TimeSeries { labels: l, samples: vec![Sample { value, timestamp: at_ms }] });
    }
    Ok(out)
}

/// One sample line: metric name, labels (values unescaped), value.
type SampleLine<'a> = (&'a str, Vec<(&'a str, String)>, f64);

/// `name{k="v",…} value [timestamp]`.
fn sample_line(line: &str) -> Result<SampleLine<'_>, &'static str> {
    let end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..end];
    if name.is_empty() {
        return Err("no metric name");
    }
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut s = body;
        loop {
            s = s.trim_start_matches([' ', ',']);
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = s.find('=').ok_or("a label without `=`")?;
            let key = s[..eq].trim();
            s = s[eq + 1..].strip_prefix('"').ok_or("a label value without quotes")?;
            let mut value = String::new();
            let mut chars = s.char_indices();
            let close = loop {
                match chars.next() {
                    None => return Err("an unterminated label value"),
                    Some((j, '"')) => break j,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("an unterminated label value"),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((key, value));
            s = &s[close + 1..];
        }
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| "a value that is not a number")?,
    };
    Ok((name, labels, value))
}

/// The series in requests of at most [`MAX_SERIES_PER_REQUEST`], each protobuf-encoded and
/// snappy-compressed (the block format, as the protocol requires): (body, samples).
pub fn batches(series: Vec<TimeSeries>) -> Vec<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut it = series.into_iter().peekable();
    while it.peek().is_some() {
        let timeseries: Vec<TimeSeries> = it.by_ref().take(MAX_SERIES_PER_REQUEST).collect();
        let samples = timeseries.iter().map(|t| t.samples.len() as u64).sum();
        let raw = WriteRequest { timeseries }.encode_to_vec();
        let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy compresses any input below 4 GiB");
        out.push((body, samples));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP synthetic_journey_runs Journey runs.\n# TYPE synthetic_journey_runs counter\n\
        synthetic_journey_runs_total{journey=\"checkout-mpesa\",step=\"\",region=\"nairobi\",outcome=\"ok\",replica=\"aggregator-0\"} 7\n\
        synthetic_journey_duration_seconds_bucket{le=\"+Inf\",journey=\"a \\\"b\\\" \\\\ c\",replica=\"aggregator-0\"} 3\n\
        synthetic_slo_burn_rate{slo=\"x\",cluster=\"mine\",replica=\"aggregator-0\"} 1.5e-3\n\
        aggregator_series 12\n# EOF\n";

    fn labels(t: &TimeSeries) -> Vec<(&str, &str)> {
        t.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect()
    }

    #[test]
    fn samples_become_sorted_series_with_the_replica_and_external_labels() {
        let rules = LabelRules {
            replica: Some(("__replica__".into(), "aggregator-0".into())),
            external: vec![("cluster".into(), "ea-prod".into())],
        };
        let s = series(TEXT, &rules, 1_700_000_000_123).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(
            labels(&s[0]),
            [
                ("__name__", "synthetic_journey_runs_total"),
                ("__replica__", "aggregator-0"),
                ("cluster", "ea-prod"),
                ("journey", "checkout-mpesa"),
                ("outcome", "ok"),
                ("region", "nairobi"),
            ],
            "sorted, `step=\"\"` left out, the replica under its label"
        );
        assert_eq!(s[0].samples, [Sample { value: 7.0, timestamp: 1_700_000_000_123 }]);
        assert_eq!(labels(&s[1])[3], ("journey", "a \"b\" \\ c"));
        assert_eq!(labels(&s[1])[4], ("le", "+Inf"));
        assert_eq!(labels(&s[2])[2], ("cluster", "mine"), "a series label wins over an external one");
        assert!((s[2].samples[0].value - 0.0015).abs() < 1e-15);
        assert_eq!(
            labels(&s[3]),
            [("__name__", "aggregator_series"), ("__replica__", "aggregator-0"), ("cluster", "ea-prod")]
        );
    }

    #[test]
    fn without_a_replica_the_labels_are_the_expositions() {
        let s = series("up{replica=\"r\"} 1\n", &LabelRules::default(), 0).unwrap();
        assert_eq!(labels(&s[0]), [("__name__", "up"), ("replica", "r")]);
        assert_eq!(series("up{a=\"x} 1\n", &LabelRules::default(), 0).unwrap_err().line, 1);
        assert!(series("up{a=\"x\"} one\n", &LabelRules::default(), 0).is_err());
    }

    #[test]
    fn batches_round_trip_through_snappy_and_protobuf() {
        let many: Vec<TimeSeries> = (0..(MAX_SERIES_PER_REQUEST + 5))
            .map(|i| TimeSeries {
                labels: vec![Label { name: "__name__".into(), value: format!("m{i}") }],
                samples: vec![Sample { value: i as f64, timestamp: 5 }],
            })
            .collect();
        let b = batches(many.clone());
        assert_eq!(b.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [MAX_SERIES_PER_REQUEST as u64, 5]);
        let raw = snap::raw::Decoder::new().decompress_vec(&b[1].0).unwrap();
        let back = WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(back.timeseries, many[MAX_SERIES_PER_REQUEST..]);
    }
}
