//! Regular expressions: compiles a handful of patterns (the regex crate) and finds, counts
//! and replaces over 1 MiB of generated log lines.
use wasmix_suite::*;

fn main() {
    let rounds = start();
    let mut rng = Rng::new(23);
    let mut log = String::new();
    while log.len() < 1 << 20 {
        log.push_str(&format!(
            "2026-12-{:02} {:02}:{:02}:{:02} {} user={}{} ip=10.{}.{}.{} took={}ms {}\n",
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            ["INFO", "WARN", "ERROR", "DEBUG"][rng.below(4) as usize],
            rng.word(),
            rng.below(1000),
            rng.below(256),
            rng.below(256),
            rng.below(256),
            rng.below(5000),
            rng.word()
        ));
    }
    let mut h = FNV_START;
    for _ in 0..rounds {
        let errors = regex::Regex::new(r"(?m)^\S+ \S+ ERROR user=([a-z]+)(\d+)").unwrap();
        let ips = regex::Regex::new(r"ip=(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})").unwrap();
        let slow = regex::Regex::new(r"took=([4-9]\d{3})ms").unwrap();
        let words = regex::Regex::new(r"\b[aeiou][a-z]{4,}\b").unwrap();
        let mut n = 0u64;
        for c in errors.captures_iter(&log) {
            n += c[2].parse::<u64>().unwrap();
        }
        n += ips.captures_iter(&log).filter(|c| &c[2] == "7").count() as u64;
        n += slow.find_iter(&log).count() as u64;
        let redacted = words.replace_all(&log, "<w>");
        h = fnv(&n.to_le_bytes(), h);
        h = fnv(redacted.as_bytes(), h);
    }
    report("regex", h);
}
