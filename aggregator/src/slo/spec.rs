//! SLO definitions: YAML files, validation with the numbers, and the bundled marketplace SLOs.

use std::{path::Path, time::Duration};

use conf::Source;
use serde::Deserialize;

use super::windows::{Period, Severity};

/// One SLO, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub name: String,
    pub service: String,
    pub description: String,
    /// As a ratio, e.g. 0.999.
    pub objective: f64,
    pub period: Period,
    pub sli: Sli,
    pub selection: Selection,
    pub alerting: Alerting,
}

impl Slo {
    /// The error budget B = 1 − objective.
    pub fn budget(&self) -> f64 {
        1.0 - self.objective
    }
}

/// What counts as bad.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// Bad = failed runs (any outcome but `ok` and `expected`).
    Availability,
    /// Bad = successful runs slower than `threshold` (of the whole journey, or of `step`).
    Latency { threshold: Duration },
}

/// Which runs an SLO counts. Empty lists mean "all". The SLO is evaluated per selected journey,
/// per region and over all regions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub journeys: Vec<String>,
    pub regions: Vec<String>,
    /// A step name: count that step's runs instead of whole journeys.
    pub step: Option<String>,
    /// Payment rails (`mpesa-ke`, `momo`, `airtel`, `mpesa-tz`): count the payment steps of these
    /// rails (whatever the steps are called, unless `step` names one) instead of whole journeys.
    /// Two payment steps of one rail in one journey count twice.
    pub rails: Vec<String>,
}

/// Who is told, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Alerting {
    pub team: String,
    pub runbook_url: String,
    pub page: bool,
    pub ticket: bool,
}

/// A problem with an SLO file: `file:line:column: field: message`.
pub type SpecError = conf::Error;

/// Something that will not stop the SLO from working, but that its owner should know, with the
/// numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    pub slo: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    slos: Vec<SloDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SloDoc {
    /// Unique name, used as the `slo` label.
    name: String,
    /// The service it belongs to (Sloth's `service`).
    service: String,
    description: Option<String>,
    /// Percent, e.g. 99.9.
    objective: f64,
    /// `30d` (default) or `28d`.
    period: Option<String>,
    sli: SliDoc,
    #[serde(default)]
    selection: SelectionDoc,
    alerting: AlertingDoc,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SliDoc {
    availability: Option<AvailabilityDoc>,
    latency: Option<LatencyDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AvailabilityDoc {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyDoc {
    /// e.g. `2s`, `500ms`; at most an hour (the histograms' range).
    threshold: conf::Dur<1, 3_600_000>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SelectionDoc {
    #[serde(default)]
    journeys: Vec<String>,
    #[serde(default)]
    regions: Vec<String>,
    step: Option<String>,
    #[serde(default)]
    rails: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertingDoc {
    team: String,
    runbook_url: String,
    #[serde(default = "yes")]
    page: bool,
    #[serde(default = "yes")]
    ticket: bool,
}

fn yes() -> bool {
    true
}

/// The marketplace's stated objectives (docs/slo.md §11), per region and overall.
pub const BUNDLED_YAML: &str = include_str!("../../slos/marketplace.yaml");

/// The bundled SLOs.
pub fn bundled() -> Vec<Slo> {
    parse(BUNDLED_YAML, "aggregator/slos/marketplace.yaml").expect("the bundled SLOs are valid")
}

/// Reads an SLO file.
pub fn load_file(path: &Path) -> Result<Vec<Slo>, SpecError> {
    parse_source(&Source::read(path)?)
}

/// Parses and validates SLOs. An SLO whose page tier can never fire is refused.
pub fn parse(src: &str, file: &str) -> Result<Vec<Slo>, SpecError> {
    parse_source(&Source::new(file, src))
}

fn parse_source(src: &Source) -> Result<Vec<Slo>, SpecError> {
    let doc: FileDoc = src.parse()?;
    let mut out: Vec<Slo> = Vec::new();
    for (i, d) in doc.slos.into_iter().enumerate() {
        let slo = validate(src, i, d, &out)?;
        out.push(slo);
    }
    Ok(out)
}

/// Checks `slos[i]` against the numbers and against the SLOs before it.
fn validate(src: &Source, i: usize, d: SloDoc, before: &[Slo]) -> Result<Slo, SpecError> {
    let fail = |field: &str, m: String| {
        let path = if field.is_empty() { format!("slos[{i}]") } else { format!("slos[{i}].{field}") };
        src.error(path, format!("slo `{}`: {m}", d.name))
    };
    if d.name.is_empty() || !d.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
        return Err(fail("name", "use letters, digits, `-` and `_` only".into()));
    }
    if before.iter().any(|s| s.name == d.name) {
        return Err(fail("name", "defined twice".into()));
    }
    if !(d.objective.is_finite() && d.objective > 0.0 && d.objective < 100.0) {
        return Err(fail("objective", format!("{} must be a percentage above 0 and below 100", d.objective)));
    }
    let period = match d.period.as_deref().unwrap_or("30d") {
        "30d" => Period::Days30,
        "28d" => Period::Days28,
        other => return Err(fail("period", format!("`{other}` is not supported; use 30d or 28d"))),
    };
    let sli = match (d.sli.availability, d.sli.latency) {
        (Some(_), None) => Sli::Availability,
        (None, Some(l)) => Sli::Latency { threshold: l.threshold.get() },
        _ => return Err(fail("sli", "give exactly one of availability or latency".into())),
    };
    if let Some(bad) = d.selection.rails.iter().find_map(|r| report::check_label(r).err().map(|e| (r, e))) {
        return Err(fail("selection.rails", format!("rail `{}`: {}", bad.0.escape_default(), bad.1)));
    }
    if d.selection.step.as_deref() == Some("") && !d.selection.rails.is_empty() {
        return Err(fail(
            "selection.step",
            "an empty step is the journey level, which has no rail; leave `step` out to count every payment step of the rails".into(),
        ));
    }
    if d.alerting.team.is_empty() {
        return Err(fail("alerting.team", "name the team to page (payments, rural-access, platform, …)".into()));
    }
    let slo = Slo {
        name: d.name.clone(),
        service: d.service,
        description: d.description.unwrap_or_default(),
        // Percent to ratio without float noise (99.9 / 100 is 0.9990000000000001).
        objective: (d.objective * 1e10).round() / 1e12,
        period,
        sli,
        selection: Selection {
            journeys: d.selection.journeys,
            regions: d.selection.regions,
            step: d.selection.step,
            rails: d.selection.rails,
        },
        alerting: Alerting {
            team: d.alerting.team,
            runbook_url: d.alerting.runbook_url,
            page: d.alerting.page,
            ticket: d.alerting.ticket,
        },
    };
    if let Some(problem) =
        impossible_tiers(&slo).into_iter().find(|(sev, _)| *sev == Severity::Page && slo.alerting.page)
    {
        return Err(fail("objective", problem.1));
    }
    Ok(slo)
}

/// Tiers whose burn-rate factor can never be exceeded: the highest possible burn rate is 1/B (every
/// event bad), so a tier with factor f ≥ 1/B never fires.
pub fn impossible_tiers(slo: &Slo) -> Vec<(Severity, String)> {
    let max_burn = 1.0 / slo.budget();
    let mut out = Vec::new();
    for w in slo.period.alert_windows() {
        if max_burn <= w.factor && !out.iter().any(|(s, _)| *s == w.severity) {
            out.push((
                w.severity,
                format!(
                    "the {} tier can never fire: at objective {:.3} % the highest possible burn rate is {:.2} (every run failing), not above its factor {:.2} ({}/{} windows); lower the objective or disable `{}`",
                    w.severity.as_str(),
                    slo.objective * 100.0,
                    max_burn,
                    w.factor,
                    w.short,
                    w.long,
                    w.severity.as_str()
                ),
            ));
        }
    }
    out
}

/// Warnings for an SLO given the expected runs per hour in one scope (one journey in one region):
/// a tier that cannot fire, and traffic so low that a single failure pages.
pub fn check(slo: &Slo, runs_per_hour: Option<f64>) -> Vec<Warning> {
    let mut out: Vec<Warning> = impossible_tiers(slo)
        .into_iter()
        .filter(|(s, _)| *s == Severity::Ticket && slo.alerting.ticket)
        .map(|(_, message)| Warning { slo: slo.name.clone(), message })
        .collect();
    if let Some(rate) = runs_per_hour {
        for w in slo.period.alert_windows() {
            let enabled = match w.severity {
                Severity::Page => slo.alerting.page,
                Severity::Ticket => slo.alerting.ticket,
            };
            let long_h = w.long.0.as_secs_f64() / 3600.0;
            // One bad run in the long window burns at (1/(rate·W))/B; it alone fires if that exceeds f.
            let needed = 1.0 / (w.factor * slo.budget() * long_h);
            if enabled && rate < needed {
                out.push(Warning {
                    slo: slo.name.clone(),
                    message: format!(
                        "{:.1} runs/h is too little traffic for the {} tier's {} window: a single failure burns at {:.1} > {:.2} and fires it; it needs more than {:.1} runs/h (probe more often, or combine regions)",
                        rate,
                        w.severity.as_str(),
                        w.long,
                        1.0 / (rate * long_h) / slo.budget(),
                        w.factor,
                        needed
                    ),
                });
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "slos:
  - name: checkout-availability
    service: marketplace
    objective: 99.9
    sli: {availability: {}}
    selection: {journeys: [checkout-mpesa]}
    alerting: {team: payments, runbook_url: https://runbooks.example/checkout}
";

    #[test]
    fn the_bundled_slos_load() {
        let s = bundled();
        let names: Vec<_> = s.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"checkout-availability") && names.contains(&"mpesa-payment-success"), "{names:?}");
        let lat = s.iter().find(|s| s.name == "checkout-latency").unwrap();
        assert_eq!(lat.sli, Sli::Latency { threshold: Duration::from_secs(2) });
        assert_eq!(lat.objective, 0.95);
    }

    #[test]
    fn a_spec_loads_and_defaults_apply() {
        let s = &parse(ONE, "s.yaml").unwrap()[0];
        assert_eq!((s.objective, s.period), (0.999, Period::Days30));
        assert!(s.alerting.page && s.alerting.ticket);
        assert!((s.budget() - 0.001).abs() < 1e-12);
    }

    #[test]
    fn errors_name_the_line_and_the_numbers() {
        let e = parse(&ONE.replace("99.9", "101"), "s.yaml").unwrap_err().to_string();
        // The offending field's own line and column, not the SLO's first line.
        assert!(e.starts_with("s.yaml:4:16: slos[0].objective: slo `checkout-availability`: 101"), "{e}");
        let e = parse(&ONE.replace("objective: 99.9", "objective: 99.9\n    period: 7d"), "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:5:13: slos[0].period:") && e.contains("`7d` is not supported"), "{e}");
        let e = parse(&ONE.replace("team: payments", "team: payments, pager: yes"), "s.yaml").unwrap_err().to_string();
        assert!(e.contains("slos[0].alerting.pager: unknown field `pager`"), "{e}");
        // Flow style, second SLO: still the field's own position.
        let two = format!(
            "{ONE}  - {{name: b, service: s, objective: 99.9, sli: {{latency: {{threshold: 2h}}}}, alerting: {{team: t, runbook_url: u}}}}\n"
        );
        let e = parse(&two, "s.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("s.yaml:8:71: ")
                && e.contains("slos[1].sli.latency.threshold: `2h` is above the most allowed here, 1h"),
            "{e}"
        );
        // 90 %: the highest burn rate is 10, below the page factor 14.4.
        let e = parse(&ONE.replace("99.9", "90"), "s.yaml").unwrap_err().to_string();
        assert!(
            e.contains("page tier can never fire")
                && e.contains("highest possible burn rate is 10.00")
                && e.contains("14.40"),
            "{e}"
        );
        assert!(
            parse(
                &ONE.replace("99.9", "90")
                    .replace("runbooks.example/checkout}", "runbooks.example/checkout, page: false}"),
                "s.yaml"
            )
            .is_ok()
        );
    }

    #[test]
    fn rail_selections_load_and_bad_ones_name_the_field() {
        let rail = ONE.replace("{journeys: [checkout-mpesa]}", "{regions: [kampala], rails: [momo]}");
        let s = &parse(&rail, "s.yaml").unwrap()[0];
        assert_eq!((s.selection.rails.as_slice(), s.selection.step.as_deref()), (&["momo".to_owned()][..], None));
        let e = parse(&rail.replace("[momo]", "[\"mo mo\"]"), "s.yaml").unwrap_err().to_string();
        assert!(e.contains("slos[0].selection.rails: slo `checkout-availability`: rail `mo mo`"), "{e}");
        let e = parse(&rail.replace("rails: [momo]", "rails: [momo], step: \"\""), "s.yaml").unwrap_err().to_string();
        assert!(e.contains("slos[0].selection.step:") && e.contains("has no rail"), "{e}");
        // The bundled per-rail SLOs: one per rail, team payments, in the rail's home region.
        let bundled = bundled();
        let per_rail: Vec<_> = bundled.iter().filter(|s| !s.selection.rails.is_empty()).collect();
        let homes: Vec<(&str, &str)> =
            per_rail.iter().map(|s| (s.selection.rails[0].as_str(), s.selection.regions[0].as_str())).collect();
        assert_eq!(homes, [("mpesa-ke", "nairobi"), ("momo", "kampala"), ("airtel", "kampala"), ("mpesa-tz", "dar")]);
        for s in per_rail {
            assert_eq!((s.alerting.team.as_str(), &s.sli), ("payments", &Sli::Availability), "{}", s.name);
            assert!(s.selection.journeys.is_empty() && s.selection.step.is_none(), "{}: by rail only", s.name);
        }
    }

    #[test]
    fn low_traffic_is_warned_about_with_the_numbers() {
        let s = &parse(ONE, "s.yaml").unwrap()[0];
        // Every 15 s from one region: 240 runs/h, enough for 99.9 %.
        assert!(check(s, Some(240.0)).is_empty());
        // Once a minute: 60 runs/h < 69.4 needed; one failure pages (the workbook's example).
        let w = check(s, Some(60.0));
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("60.0 runs/h") && w[0].message.contains("69.4"), "{}", w[0].message);
        let low = &parse(&ONE.replace("99.9", "92"), "s.yaml").map(|_| ()).unwrap_err();
        assert!(low.to_string().contains("never fire"));
    }
}
