//! The generated rules pass `promtool check rules` (Debian's `prometheus` package). Under CI
//! (`CI=true`) a missing promtool is a failure, elsewhere the test says why it did not run.

use std::process::Command;

#[test]
fn generated_rules_pass_promtool_check_rules() {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "promtool is missing: .ci/run must install `prometheus`");
        eprintln!("SKIPPED: promtool not installed (apt-get install prometheus)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("slo-rules.yml");
    std::fs::write(&path, aggregator::slo::rules::rules_yaml(&aggregator::slo::spec::bundled())).unwrap();
    let out = Command::new("promtool").args(["check", "rules"]).arg(&path).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool rejected the rules:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}
