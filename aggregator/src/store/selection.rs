//! Which series a query or an SLO looks at, and how results are grouped.

use report::SeriesKey;
use serde::{Deserialize, Serialize};

/// A choice of series: each list, when given, keeps only series whose label is in it; `None`
/// keeps all. `steps: Some(vec!["".into()])` means the journey-level series (one per run).
///
/// Beware: with `steps: None` a run is counted once at journey level *and* once per step; SLOs
/// over runs should use [`Selection::journey_level`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Selection {
    pub journeys: Option<Vec<String>>,
    pub steps: Option<Vec<String>>,
    pub outcomes: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
    pub profiles: Option<Vec<String>>,
}

impl Selection {
    /// Every series (journey-level and steps).
    pub fn all() -> Selection {
        Selection::default()
    }

    /// Journey-level series only: one count per run.
    pub fn journey_level() -> Selection {
        Selection { steps: Some(vec![String::new()]), ..Selection::default() }
    }

    pub fn journeys<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> Selection {
        self.journeys = Some(v.into_iter().map(Into::into).collect());
        self
    }

    pub fn steps<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> Selection {
        self.steps = Some(v.into_iter().map(Into::into).collect());
        self
    }

    pub fn outcomes<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> Selection {
        self.outcomes = Some(v.into_iter().map(Into::into).collect());
        self
    }

    pub fn regions<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> Selection {
        self.regions = Some(v.into_iter().map(Into::into).collect());
        self
    }

    pub fn profiles<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> Selection {
        self.profiles = Some(v.into_iter().map(Into::into).collect());
        self
    }

    /// Whether the series `k` is selected.
    pub fn matches(&self, k: &SeriesKey) -> bool {
        let ok = |list: &Option<Vec<String>>, v: &str| list.as_ref().is_none_or(|l| l.iter().any(|x| x == v));
        ok(&self.journeys, &k.journey)
            && ok(&self.steps, &k.step)
            && ok(&self.outcomes, &k.outcome)
            && ok(&self.regions, &k.region)
            && ok(&self.profiles, &k.profile)
    }
}

/// A label to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    Journey,
    Step,
    Outcome,
    Region,
    Profile,
}

impl Dim {
    pub const ALL: [Dim; 5] = [Dim::Journey, Dim::Step, Dim::Outcome, Dim::Region, Dim::Profile];

    pub fn name(self) -> &'static str {
        match self {
            Dim::Journey => "journey",
            Dim::Step => "step",
            Dim::Outcome => "outcome",
            Dim::Region => "region",
            Dim::Profile => "profile",
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.name() == s)
    }

    /// This label's value in `k`.
    pub fn of(self, k: &SeriesKey) -> &str {
        match self {
            Dim::Journey => &k.journey,
            Dim::Step => &k.step,
            Dim::Outcome => &k.outcome,
            Dim::Region => &k.region,
            Dim::Profile => &k.profile,
        }
    }
}

#[cfg(test)]
mod tests {
    use testkit::reports::key;

    use super::*;

    #[test]
    fn lists_filter_and_none_keeps_all() {
        let k = key("checkout-mpesa", "", "ok", "kampala");
        assert!(Selection::all().matches(&k));
        assert!(Selection::journey_level().matches(&k));
        assert!(!Selection::journey_level().matches(&key("checkout-mpesa", "pay", "ok", "kampala")));
        assert!(Selection::all().regions(["nairobi", "kampala"]).matches(&k));
        assert!(!Selection::all().regions(["nairobi"]).matches(&k));
        assert!(!Selection::all().outcomes(Vec::<String>::new()).matches(&k));
        assert!(Selection::all().journeys(["checkout-mpesa"]).outcomes(["ok", "timeout"]).matches(&k));
    }

    #[test]
    fn dims_round_trip() {
        for d in Dim::ALL {
            assert_eq!(Dim::parse(d.name()), Some(d));
        }
        assert_eq!(Dim::Region.of(&key("j", "", "ok", "dar")), "dar");
        assert_eq!(Dim::parse("le_region"), None);
    }
}
