//! Scale figure for bench/run: memory and lookup time of the in-memory revocation set with
//! one million live entries. Prints one line: `entries MB ns_per_lookup`.

use std::time::Instant;
use tessera_core::clock::SystemRng;
use tessera_core::revocation::RevocationSet;
use tessera_core::secret::random_b64;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_owned()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    const N: usize = 1_000_000;
    let now = 1_800_000_000;
    // Generate the ids first so that their memory is not counted as the set's.
    let ids: Vec<String> = (0..N).map(|_| random_b64(&SystemRng, 16)).collect();
    let before = rss_kb();
    let mut set = RevocationSet::new(now);
    for (i, id) in ids.iter().enumerate() {
        set.insert(id, now + 3600 + (i % 3600) as i64);
    }
    let after = rss_kb();
    let probes: Vec<String> = (0..N).map(|_| random_b64(&SystemRng, 16)).collect();
    let start = Instant::now();
    let mut hits = 0usize;
    for (i, p) in probes.iter().enumerate() {
        hits += usize::from(set.contains(if i % 2 == 0 { &ids[i] } else { p }));
    }
    let ns = start.elapsed().as_nanos() as f64 / N as f64;
    assert!(hits >= N / 2);
    println!("{} {:.1} {:.0}", set.len(), (after.saturating_sub(before)) as f64 / 1024.0, ns);
}
