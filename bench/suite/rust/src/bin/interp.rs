//! An interpreter loop: Rhai (an AST-walking scripting language) running a script of loops,
//! closures, string building and maps.
use wasmix_suite::*;

const SCRIPT: &str = r#"
fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }
let total = 0;
for round in 0..ROUNDS {
    let m = #{};
    for i in 0..3000 {
        let key = "k" + (i % 97);
        m[key] = (m[key] ?? 0) + i * round;
    }
    let s = 0;
    for k in m.keys() { s += m[k]; }
    let v = [];
    for i in 0..2000 { v.push((i * 7919) % 1009); }
    v.sort();
    total += s + v[1000] + fib(17);
}
total
"#;

fn main() {
    let rounds = start();
    let engine = rhai::Engine::new();
    let script = SCRIPT.replace("ROUNDS", &rounds.to_string());
    let total: i64 = engine.eval(&script).unwrap();
    report("interp", total as u64);
}
