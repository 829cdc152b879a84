//! Runs a Rhai script (a real interpreter: parser, AST walker, dynamic values, closures) that
//! computes for a while, for the snapshot tests: a snapshot taken mid-computation must resume
//! to the same result.
//!
//! `script [N]`: counts the primes below N (default 300000) the slow way, printing a line as
//! it starts and the result at the end.

fn main() {
    let n: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300_000);
    let engine = rhai::Engine::new();
    let script = r#"
        let primes = [];
        let checksum = 0;
        for candidate in 2..limit {
            let is_prime = true;
            for p in primes {
                if p * p > candidate { break; }
                if candidate % p == 0 { is_prime = false; break; }
            }
            if is_prime {
                primes.push(candidate);
                checksum = (checksum * 31 + candidate) % 1000000007;
            }
        }
        `${primes.len()} primes below ${limit}, checksum ${checksum}`
    "#;
    let mut scope = rhai::Scope::new();
    scope.push("limit", n);
    println!("computing");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    match engine.eval_with_scope::<String>(&mut scope, script) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("script failed: {e}");
            std::process::exit(1);
        }
    }
}
