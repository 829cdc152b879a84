//! Prints argv one per line, then the environment sorted, then exits with $EXIT_CODE if set.
fn main() {
    for a in std::env::args() {
        println!("arg={a}");
    }
    let mut vars: Vec<_> = std::env::vars().collect();
    vars.sort();
    for (k, v) in &vars {
        println!("env={k}={v}");
    }
    if let Ok(code) = std::env::var("EXIT_CODE") {
        std::process::exit(code.parse().unwrap_or(2));
    }
}
