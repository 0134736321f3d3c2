//! Live progress on stderr (indicatif): elapsed and remaining, achieved rate, in flight, errors,
//! and p50/p95/p99 so far. Off when stderr is not a terminal or with `--quiet`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
}

/// What the display shows, refreshed once per interval.
pub struct Snapshot {
    pub elapsed: Duration,
    pub completed: u64,
    pub rate: f64,
    pub in_flight: u64,
    pub errors: u64,
    pub dropped: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl Progress {
    /// `expected`: the planned length, when known.
    pub fn new(enabled: bool, expected: Option<Duration>) -> Progress {
        use std::io::IsTerminal;
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = match expected {
            Some(d) => {
                let b = ProgressBar::with_draw_target(Some(d.as_secs().max(1)), ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template("{elapsed_precise} {bar:20.cyan/blue} remaining {eta:>4}  {msg}")
                        .expect("valid template"),
                );
                b
            }
            None => {
                let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template("{elapsed_precise} {spinner}  {msg}").expect("valid template"),
                );
                b
            }
        };
        Progress { bar: Some(bar) }
    }

    pub fn update(&self, s: &Snapshot) {
        let Some(bar) = &self.bar else { return };
        bar.set_position(s.elapsed.as_secs());
        bar.set_message(format!(
            "{} done  {:.0}/s  in flight {}  errors {}  dropped {}  p50 {:.1}ms p95 {:.1}ms p99 {:.1}ms",
            s.completed, s.rate, s.in_flight, s.errors, s.dropped, s.p50_ms, s.p95_ms, s.p99_ms
        ));
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
