//! The generated rules pass `promtool check rules` (Debian's `prometheus` package). Under CI
//! (`CI=true`) a missing promtool is a failure, elsewhere the test says why it did not run.

use testkit::prometheus::Promtool;

#[test]
fn generated_rules_pass_promtool_check_rules() {
    let Some(promtool) = Promtool::find() else { return };
    let dir = testkit::temp_dir("rules");
    let path = dir.join("slo-rules.yml");
    std::fs::write(&path, aggregator::slo::rules::rules_yaml(&aggregator::slo::spec::bundled())).unwrap();
    let said = promtool.check_rules(&path);
    assert!(said.ok, "promtool rejected the rules:\n{}", said.text);
    assert!(said.text.contains("SUCCESS"), "{}", said.text);
}
