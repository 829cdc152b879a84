//! JSON: builds a document of orders, serialises it with serde_json, parses it back into
//! typed values and into a `Value` tree, and sums over it.
use serde::{Deserialize, Serialize};
use wasmix_suite::*;

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Order {
    id: u64,
    customer: String,
    tags: Vec<String>,
    lines: Vec<Line>,
    paid: bool,
    note: Option<String>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Line {
    sku: String,
    quantity: u32,
    price: f64,
}

fn main() {
    let rounds = start();
    let mut rng = Rng::new(17);
    let mut h = FNV_START;
    for _ in 0..rounds {
        let orders: Vec<Order> = (0..4000)
            .map(|id| Order {
                id,
                customer: format!("{} {}", rng.word(), rng.word()),
                tags: (0..rng.below(4)).map(|_| rng.word()).collect(),
                lines: (0..1 + rng.below(6))
                    .map(|_| Line {
                        sku: format!("SKU-{:06}", rng.below(1_000_000)),
                        quantity: 1 + rng.below(20) as u32,
                        price: rng.below(100_000) as f64 / 100.0,
                    })
                    .collect(),
                paid: rng.below(2) == 0,
                note: (rng.below(3) == 0).then(|| String::from_utf8(rng.text(40)).unwrap()),
            })
            .collect();
        let text = serde_json::to_string(&orders).unwrap();
        let typed: Vec<Order> = serde_json::from_str(&text).unwrap();
        assert_eq!(typed, orders);
        let tree: serde_json::Value = serde_json::from_str(&text).unwrap();
        let total: f64 = tree
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| o["lines"].as_array().unwrap())
            .map(|l| l["quantity"].as_f64().unwrap() * l["price"].as_f64().unwrap())
            .sum();
        let pretty = serde_json::to_string_pretty(&tree).unwrap();
        h = fnv(pretty.as_bytes(), h);
        h = fnv(&total.to_bits().to_le_bytes(), h);
    }
    report("json", h);
}
