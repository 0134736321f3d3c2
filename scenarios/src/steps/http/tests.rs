//! The `http` model and its load-time checks; requests are played in `scenarios/tests/journeys.rs`.

use std::{collections::BTreeMap, path::Path};

use super::HttpStep;
use crate::{
    journey::{DEFAULT_STEP_TIMEOUT, Journey, parse_journey},
    steps::{Kind, StepKind},
};

fn parse(src: &str) -> Result<Journey, String> {
    parse_journey(src, "j.yaml", Path::new(".")).map_err(|e| e.to_string())
}

fn step(yaml: &str) -> HttpStep {
    serde_yaml_ng::from_str(yaml).unwrap()
}

#[test]
fn defaults_and_checks() {
    let j = parse("name: x\nsteps:\n  - name: a\n    http: {url: \"http://h/\"}\n").unwrap();
    let Kind::Http(h) = &j.steps[0].kind else { panic!() };
    assert_eq!(h.method, "GET");
    assert_eq!(j.steps[0].timeout, DEFAULT_STEP_TIMEOUT);

    let e = parse("name: x\nsteps:\n  - name: a\n    http: {url: \"http://h/\", body: b, form: {a: b}}\n").unwrap_err();
    assert!(e.contains("steps[0].http.json: step `a`: give at most one of json, form or body"), "{e}");
    let e = parse("name: x\nsteps:\n  - name: a\n    http: {url: \"http://h/\", poll: {interval: 1s, backoff: 0.5}}\n")
        .unwrap_err();
    assert!(e.contains("steps[0].http.poll: step `a`: interval must be above 0 and backoff at least 1"), "{e}");
}

#[test]
fn templates_name_every_field_that_may_hold_one() {
    let h = step("url: \"{{ a }}/x\"\nheaders: {x-k: \"{{ b }}\"}\njson: {items: [{name: \"{{ c }}\"}]}\n");
    let fields: Vec<String> = h.templates().into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["url", "headers.x-k", "json.items[0].name"]);
}

#[test]
fn credentials_in_plain_text_are_found_below_the_kind() {
    let h = step("url: \"http://h/?api_key=abcd1234\"\nheaders: {authorization: \"Bearer {{ tok }}\"}\n");
    let vars = BTreeMap::from([("tok".to_owned(), "abcdefgh".to_owned())]);
    let found: Vec<String> = h.plain_credentials(&vars).into_iter().map(|(f, _)| f).collect();
    assert_eq!(found, ["variables.tok", "url"]);
}
