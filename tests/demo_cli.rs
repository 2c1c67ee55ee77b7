//! `flowswitch demo`, the README's first command, as a user runs it (with
//! a byte count instead of a time so the run is short): it exits 0, every
//! ping is answered, the stream's payload is verified, and every flow of
//! flows/demo.yaml shows the packets that went through it.

use std::process::Command;

fn demo(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowswitch"))
        .arg("demo")
        .args(args)
        .output()
        .expect("run flowswitch demo");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The packet count printed for `flow` in the "flows hit" table.
fn hits(text: &str, flow: &str) -> u64 {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() == 4 && w[1] == flow)
        .and_then(|w| w[2].parse().ok())
        .unwrap_or_else(|| panic!("no row for flow {flow} in:\n{text}"))
}

#[test]
fn demo_pings_and_streams_on_both_engines() {
    for engine in ["jit", "interp"] {
        let (ok, text) = demo(&[
            "--engine",
            engine,
            "--pings",
            "2",
            "--seconds",
            "60",
            "--bytes",
            "2000000",
        ]);
        assert!(ok, "{engine}: exit status\n{text}");
        assert!(text.contains("ping h1 -> h2: 2/2 replies"), "{text}");
        assert!(
            text.contains("tcp  h1 -> h2: 2000000 bytes in") && text.contains("payload verified"),
            "{text}"
        );
        assert!(hits(&text, "arp") >= 2, "{text}");
        assert!(hits(&text, "ping") >= 4, "{text}");
        assert!(hits(&text, "tcp-to-h2") >= 2_000_000 / 1460, "{text}");
        assert!(hits(&text, "tcp-to-h1") > 0, "{text}");
    }
}

#[test]
fn demo_refuses_bad_options() {
    let (ok, text) = demo(&["--engine", "quantum"]);
    assert!(!ok);
    assert!(text.contains("quantum"), "{text}");
}
