//! Prints ours/peer ratios from criterion's saved estimates (`target/criterion/<id>/new`).

use std::path::PathBuf;

fn mean_ns(id: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let text =
        std::fs::read_to_string(dir.join("criterion").join(id).join("new/estimates.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// For each `(label, ours, peer)`, prints `peer time / our time` (above 1: we are faster).
pub fn print(pairs: &[(&str, &str, &str)]) {
    println!("\nratios (peer time / ants-coord time; > 1 means ants-coord is faster):");
    for (label, ours, peer) in pairs {
        match (mean_ns(ours), mean_ns(peer)) {
            (Some(o), Some(p)) => {
                println!("  {label:<28} {:>6.2}x   ({o:.0} ns vs {p:.0} ns)", p / o)
            }
            _ => println!("  {label:<28} (not measured in this run)"),
        }
    }
}
