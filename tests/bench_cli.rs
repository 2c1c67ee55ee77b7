//! `flowswitch bench pipeline` as a user runs it, on one small table and
//! two rounds (its figures are a benchmark's, not checked here): it exits
//! 0 and prints the build line, a rate per traffic pattern with its range,
//! and a hit rate of 100% for the hit traffic and 0% for the miss traffic.
//! Bad options are refused with exit status 2.

use std::process::Command;

fn bench(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .args(["bench", "pipeline"])
        .args(args)
        .output()
        .expect("run flowswitch bench pipeline");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// The line after `heading` that names `flows` flows.
fn rate_line<'a>(text: &'a str, heading: &str, flows: &str) -> &'a str {
    text.lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .find(|l| l.trim_start().starts_with(&format!("{flows} flows:")))
        .unwrap_or_else(|| panic!("no {heading} line for {flows} flows in:\n{text}"))
}

#[test]
fn one_table_in_two_rounds() {
    let (code, text) = bench(&["--flows", "10", "--rounds", "2"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(", 2 rounds,"), "{text}");
    assert!(text.contains("10 flows: build "), "{text}");
    let hits = rate_line(&text, "cache hits:", "10");
    assert!(
        hits.contains("Mpps/core (") && hits.contains("hit rate 100.0%"),
        "{hits}"
    );
    let misses = rate_line(&text, "cache misses:", "10");
    assert!(misses.contains("hit rate   0.0%"), "{misses}");
    assert!(text.contains("peak RSS "), "{text}");
}

#[test]
fn bad_rounds_are_refused() {
    for bad in ["0", "101", "x"] {
        let (code, text) = bench(&["--flows", "10", "--rounds", bad]);
        assert_eq!(code, Some(2), "--rounds {bad}: {text}");
        assert!(text.contains("--rounds"), "{text}");
    }
}
