//! Which series a query or an SLO looks at, and how results are grouped.

use report::SeriesKey;
use serde::{Deserialize, Serialize};

/// A choice of series: each list, when given, keeps only series whose label is in it; `None`
/// keeps all. `steps: Some(vec!["".into()])` means the journey-level series (one per run).
///
/// Beware: with `steps: None` a run is counted once at journey level *and* once per step; SLOs
/// over runs should use [`Selection::journey_level`].
///
/// `rails` and `reasons` pick payment steps' series by their rail and provider code; every other
/// series has both empty, so `rails: Some(vec!["momo".into()])` keeps only MoMo payment steps,
/// whatever they are called. Both are left out of the JSON when `None` (replies read as before).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Selection {
    pub journeys: Option<Vec<String>>,
    pub steps: Option<Vec<String>>,
    pub outcomes: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
    pub profiles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rails: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
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

    pub fn rails<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> Selection {
        self.rails = Some(v.into_iter().map(Into::into).collect());
        self
    }

    pub fn reasons<S: Into<String>>(mut self, v: impl IntoIterator<Item = S>) -> Selection {
        self.reasons = Some(v.into_iter().map(Into::into).collect());
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
            && ok(&self.rails, &k.rail)
            && ok(&self.reasons, &k.reason)
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
    /// A payment step's rail (empty for every other series).
    Rail,
    /// A payment step's provider code (empty when none, and for every other series).
    Reason,
}

impl Dim {
    pub const ALL: [Dim; 7] =
        [Dim::Journey, Dim::Step, Dim::Outcome, Dim::Region, Dim::Profile, Dim::Rail, Dim::Reason];

    pub fn name(self) -> &'static str {
        match self {
            Dim::Journey => "journey",
            Dim::Step => "step",
            Dim::Outcome => "outcome",
            Dim::Region => "region",
            Dim::Profile => "profile",
            Dim::Rail => "rail",
            Dim::Reason => "reason",
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
            Dim::Rail => &k.rail,
            Dim::Reason => &k.reason,
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
    fn rails_and_reasons_pick_payment_steps() {
        let momo = testkit::reports::pay_key("checkout-momo", "pay", "ok", "kampala", "momo", "SUCCESSFUL");
        let cart = key("checkout-momo", "cart", "ok", "kampala");
        assert!(Selection::all().rails(["momo"]).matches(&momo));
        assert!(!Selection::all().rails(["momo"]).matches(&cart), "a step without a rail is not a MoMo payment");
        assert!(!Selection::all().rails(["airtel", "mpesa-tz"]).matches(&momo));
        assert!(Selection::all().rails(["momo"]).reasons(["SUCCESSFUL", "EXPIRED"]).matches(&momo));
        assert!(!Selection::all().reasons(["APPROVAL_REJECTED"]).matches(&momo));
        assert_eq!(Dim::Rail.of(&momo), "momo");
        assert_eq!(Dim::Reason.of(&momo), "SUCCESSFUL");
        assert_eq!(Dim::Rail.of(&cart), "");
        // Left out of the JSON unless given, so replies without them read as before.
        let json = serde_json::to_string(&Selection::journey_level()).unwrap();
        assert!(!json.contains("rails") && !json.contains("reasons"), "{json}");
        let json = serde_json::to_string(&Selection::all().rails(["momo"])).unwrap();
        assert!(json.contains(r#""rails":["momo"]"#), "{json}");
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
