//! For the workspace's tests: what a test does when it cannot run here (no root, no cgroup
//! hierarchy, no package). It fails, naming what it lacked — always under `CI=true`, and
//! elsewhere unless `CLOUDFORMER_ALLOW_SKIP=1` says the developer accepts skipping it. A test
//! never passes by returning early unasked.

/// Environment variable that lets a developer's run skip tests that cannot run there.
pub const ALLOW_SKIP_ENV: &str = "CLOUDFORMER_ALLOW_SKIP";

/// Whether a test that cannot run should be skipped rather than fail.
pub fn skip_allowed() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let allowed = std::env::var(ALLOW_SKIP_ENV).is_ok_and(|v| v == "1");
    allowed && !ci
}

/// Called by test `test` that cannot run because of `why`: panics (the test fails) unless
/// skipping is allowed, in which case it says so and the caller returns.
#[track_caller]
pub fn cannot_run(test: &str, why: &str) {
    if !skip_allowed() {
        panic!(
            "{test} cannot run here: {why}. (Under CI=true a missing prerequisite is a failure; \
             outside CI, {ALLOW_SKIP_ENV}=1 skips such tests.)"
        );
    }
    eprintln!("SKIP {test}: {why} ({ALLOW_SKIP_ENV}=1)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_that_cannot_run_fails_unless_skipping_is_allowed() {
        // Only this test touches these variables in this test binary.
        std::env::remove_var(ALLOW_SKIP_ENV);
        let r = std::panic::catch_unwind(|| cannot_run("t", "no root"));
        let msg = r.expect_err("must fail").downcast::<String>().unwrap();
        assert!(msg.contains("t cannot run here: no root"), "{msg}");
        std::env::set_var(ALLOW_SKIP_ENV, "1");
        let ci = std::env::var("CI").ok();
        std::env::set_var("CI", "true");
        assert!(std::panic::catch_unwind(|| cannot_run("t", "no root")).is_err());
        std::env::remove_var("CI");
        assert!(std::panic::catch_unwind(|| cannot_run("t", "no root")).is_ok());
        std::env::remove_var(ALLOW_SKIP_ENV);
        if let Some(v) = ci {
            std::env::set_var("CI", v);
        }
    }
}
