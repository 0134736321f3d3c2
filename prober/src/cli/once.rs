//! `prober once`: run one journey and show every step.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use clap::Args;
use comfy_table::{Cell, CellAlignment, Color, Table, presets::UTF8_FULL_CONDENSED};
use scenarios::{Outcome, PlayOptions, Trace};

use super::{UsageError, link_args::LinkArgs};

/// Run one journey once and print a trace: each step with its duration and phases, the failure
/// explained in words.
///
/// The network profile is --profile, else the journey's own `profile:`, else `loopback`. Exit
/// code: 0 when the journey succeeds, 1 when it fails, 2 when the journey file (or a flag) is bad.
///
/// Example, with `sandbox` running in another terminal:
///
///   prober once scenarios/ussd-balance.yaml --profile ea-3g
///   prober once scenarios/checkout-mpesa.yaml --set phone=254700000101 --json
#[derive(Debug, Clone, Args)]
#[command(verbatim_doc_comment)]
pub struct OnceArgs {
    /// The journey file (or a dialoguss scenario, imported).
    #[arg(value_name = "JOURNEY.yaml")]
    pub journey: PathBuf,

    #[command(flatten)]
    pub link: LinkArgs,

    /// Override a journey variable (repeatable): --set base_url=http://127.0.0.1:7700
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub set: Vec<(String, String)>,

    /// Print the trace as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Also print each request/response excerpt (masked).
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    Ok((k.trim().to_owned(), v.to_owned()))
}

/// Runs the journey; `Ok(false)` when it failed.
pub async fn run(args: OnceArgs) -> anyhow::Result<bool> {
    let journey = scenarios::load_file(&args.journey).map_err(|e| UsageError(e.to_string()))?;
    let known: Vec<&str> = journey.variables.keys().map(String::as_str).collect();
    for (k, _) in &args.set {
        if !journey.variables.contains_key(k) {
            return Err(UsageError(format!(
                "--set {k}: the journey has no variable `{k}` (it has: {})",
                known.join(", ")
            ))
            .into());
        }
    }
    let profile = args.link.resolve(Some(journey.profile.as_deref().unwrap_or("loopback")))?;
    let mut opts = PlayOptions::new(profile, args.link.seed());
    opts.overrides = args.set.iter().cloned().collect::<BTreeMap<_, _>>();
    let trace = scenarios::play(&journey, &opts).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
    } else {
        print!("{}", render(&trace, args.verbose));
    }
    Ok(trace.outcome.is_good())
}

/// The human-readable trace.
pub fn render(t: &Trace, verbose: bool) -> String {
    let mut out = format!("journey {}  profile {}  seed {}  run {}\n", t.journey, t.profile, t.seed, t.run_id);
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(["#", "step", "kind", "start", "took", "dns", "connect", "tls", "ttfb", "transfer", "outcome"]);
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    for (i, s) in t.steps.iter().enumerate() {
        let color = match s.outcome {
            Outcome::Ok => Color::Green,
            Outcome::Expected => Color::Yellow,
            _ => Color::Red,
        };
        table.add_row(vec![
            right((i + 1).to_string()),
            Cell::new(&s.name),
            Cell::new(s.kind),
            right(ms(s.start_offset)),
            right(ms(s.duration)),
            right(ms(s.phases.dns)),
            right(ms(s.phases.connect)),
            right(ms(s.phases.tls)),
            right(ms(s.phases.ttfb)),
            right(ms(s.phases.transfer)),
            Cell::new(s.outcome.as_str()).fg(color),
        ]);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    out.push_str(&payments(t));
    if verbose {
        for s in &t.steps {
            for e in &s.excerpts {
                let status = e.status.map_or("-".to_owned(), |c| c.to_string());
                out.push_str(&format!("\n── {} · {} · HTTP {status} · {}\n", s.name, e.label, ms(e.duration)));
                if !e.request.is_empty() {
                    out.push_str(&format!("→ {}\n", e.request.replace('\n', "\n  ")));
                }
                out.push_str(&format!("← {}\n", e.response.replace('\n', "\n  ")));
            }
        }
        out.push('\n');
    }
    match &t.failure {
        None => out.push_str(&format!("{} in {}\n", t.outcome, ms(t.duration))),
        Some(f) => out.push_str(&format!("FAILED ({}) after {}: {}\n", f.outcome, ms(t.duration), f.message)),
    }
    out
}

/// One line per payment step: its rail, the provider's code and what it means, in words.
fn payments(t: &Trace) -> String {
    let mut out = String::new();
    for s in t.steps.iter().filter(|s| s.rail.is_some()) {
        let words = s.note.as_deref().or(s.failure.as_ref().map(|f| f.message.as_str())).unwrap_or("no result");
        let code = s.reason.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "payment `{}` · rail {} · code {code} · {}: {words}\n",
            s.name,
            s.rail.unwrap_or_default(),
            s.outcome
        ));
    }
    out
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v >= 10_000.0 { format!("{:.1} s", v / 1000.0) } else { format!("{v:.0} ms") }
}
