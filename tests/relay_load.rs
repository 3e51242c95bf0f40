//! The load generator counts what it measures: a small `ants-load latency` run of several
//! runs has one receipt sample per op and one delivery sample per op and subscriber, reads the
//! relay's own count of them, and ends with the summary of its runs. (The figures themselves
//! are for BENCHMARKS.md, not asserted.)
#![cfg(all(feature = "relay", unix, not(target_arch = "wasm32")))]

use std::process::Command;

/// The number right after `before` in `line`.
fn number_after(line: &str, before: &str) -> u64 {
    let start = line
        .find(before)
        .unwrap_or_else(|| panic!("{before:?} in {line}"))
        + before.len();
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("a number after {before:?} in {line}"))
}

/// Runs `ants-load` with `args` over a fresh data directory (removed after); fails the test
/// unless it succeeds, and returns what it printed.
fn ants_load(name: &str, args: &[&str]) -> String {
    let data = std::env::temp_dir().join(format!("ants-load-{name}-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_ants-load"))
        .args(args)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&data);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn a_latency_run_samples_every_receipt_and_every_delivery() {
    let stdout = ants_load(
        "test",
        &[
            "latency",
            "--rate",
            "200",
            "--subscribers",
            "3",
            "--publishers",
            "2",
            "--seconds",
            "2",
            "--runs",
            "2",
        ],
    );
    let runs: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("latency: "))
        .collect();
    assert_eq!(runs.len(), 2, "{stdout}");
    for run in runs {
        let ops = number_after(run, "latency: ");
        assert!(ops >= 200, "{run}");
        let receipts = number_after(run, "ms (");
        assert_eq!(receipts, ops, "one receipt sample per op: {run}");
        let deliveries = number_after(&run[run.find("publish→subscriber").unwrap()..], "ms (");
        assert_eq!(
            deliveries,
            ops * 3,
            "one delivery sample per op and subscriber: {run}"
        );
        // The relay's own clock, read from its /metrics: every op receipted, a share in range.
        let own = &run[run.find("relay's own").unwrap()..];
        assert_eq!(number_after(own, "% of "), ops, "{run}");
        let share: f64 = own[own.find(" for ").unwrap() + 5..own.find('%').unwrap()]
            .parse()
            .unwrap();
        assert!((0.0..=100.0).contains(&share), "{run}");
        // Its mean commit and what it wrote to storage (`n/a` where /proc/<pid>/io is missing;
        // 0 on a data directory in tmpfs).
        let commit: f64 = own[own.find("mean commit ").unwrap() + 12..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(commit > 0.0, "{run}");
        // Then what it wrote against what it stores: `N MiB written to storage for M MiB of
        // entries stored: bytes written / bytes stored = R×` (`n/a` for what was not read).
        let (written, stored) = own[own.find(" ms, ").unwrap() + 5..]
            .split_once(" written to storage for ")
            .unwrap_or_else(|| panic!("{run}"));
        let mib = |text: &str| {
            text.strip_suffix(" MiB")
                .is_some_and(|n| n.parse::<f64>().is_ok())
        };
        assert!(written == "n/a" || mib(written), "{run}");
        if let Some((stored, ratio)) = stored.split_once(" of entries stored: ") {
            assert!(mib(stored), "{run}");
            let ratio = ratio
                .strip_prefix("bytes written / bytes stored = ")
                .and_then(|r| r.strip_suffix('×'))
                .unwrap_or_else(|| panic!("{run}"));
            assert!(ratio.parse::<f64>().is_ok(), "{run}");
        } else {
            assert_eq!(stored, "n/a", "{run}");
        }
    }
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("latency over 2 runs: "))
        .unwrap_or_else(|| panic!("no summary line in {stdout}"));
    assert_eq!(summary.matches(" of 2").count(), 2, "{summary}");
    assert!(
        summary.contains("relay's own publish→receipt within 10 ms for "),
        "{summary}"
    );
}

#[test]
fn a_latency_run_too_large_to_sign_ahead_is_refused_before_it_starts() {
    let data = std::env::temp_dir().join(format!("ants-load-big-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_ants-load"))
        .args(["latency", "--rate", "1000000", "--seconds", "300", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&data);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("more than a run signs ahead"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("latency: "));
}

/// `throughput --owned` runs on open topics, then on topics each publisher owns, and every op of
/// both runs is receipted: the access rules let an owner write its own topic.
#[test]
fn an_owned_topics_run_receipts_every_op_and_prints_its_ratio() {
    let stdout = ants_load(
        "owned",
        &[
            "throughput",
            "--publishers",
            "3",
            "--subscribers",
            "0",
            "--topics",
            "3",
            "--ops-per-publisher",
            "100",
            "--owned",
            "--seconds",
            "60",
        ],
    );
    let runs: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("throughput: "))
        .collect();
    assert_eq!(runs.len(), 2, "{stdout}");
    for run in runs {
        assert_eq!(
            number_after(run, "topics: "),
            300,
            "every op receipted: {run}"
        );
        assert_eq!(number_after(run, "; "), 0, "none refused: {run}");
    }
    assert!(stdout.contains("ratio owned / open = "), "{stdout}");
    // Subscribers cannot read owned topics without capabilities: refused before any run.
    let refused = Command::new(env!("CARGO_BIN_EXE_ants-load"))
        .args(["throughput", "--subscribers", "1", "--owned"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn a_small_flood_receipts_every_honest_op_and_bounds_the_database_handles() {
    let stdout = ants_load(
        "flood",
        &[
            "flood",
            "--consumers",
            "20",
            "--idle",
            "50",
            "--entries",
            "500",
            "--rate",
            "100",
            "--seconds",
            "1",
            "--after-seconds",
            "1",
        ],
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("flood: "))
        .unwrap_or_else(|| panic!("no flood line: {stdout}"));
    // Every honest publish is receipted, alone and under the flood.
    assert_eq!(number_after(line, "ms ("), 100, "receipts alone: {line}");
    let under = &line[line.find("under the flood").unwrap()..];
    assert_eq!(
        number_after(under, "ms ("),
        100,
        "receipts under the flood: {line}"
    );
    // The store's own handles plus the default two readers, at most.
    let handles = &line[line.find("handles to the database").unwrap()..];
    assert!(number_after(handles, "peak ") <= 4, "{line}");
}
