//! An SQLite-style workload on redb (an embedded, transactional B-tree store): a table of
//! accounts and an index table, filled in transactions, then point lookups, range scans,
//! updates and deletes.
use redb::{backends::InMemoryBackend, Database, ReadableDatabase, ReadableTable, TableDefinition};
use wasmix_suite::*;

const ACCOUNTS: TableDefinition<u64, &[u8]> = TableDefinition::new("accounts");
const BY_NAME: TableDefinition<&str, u64> = TableDefinition::new("by_name");

fn main() {
    let rounds = start();
    let mut rng = Rng::new(29);
    let mut h = FNV_START;
    for _ in 0..rounds {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        let n = 20_000u64;
        for batch in 0..20 {
            let tx = db.begin_write().unwrap();
            {
                let mut accounts = tx.open_table(ACCOUNTS).unwrap();
                let mut by_name = tx.open_table(BY_NAME).unwrap();
                for i in batch * (n / 20)..(batch + 1) * (n / 20) {
                    let name = format!("{}-{i}", rng.word());
                    let row = format!("{name};balance={};city={}", rng.below(100_000), rng.word());
                    accounts.insert(i, row.as_bytes()).unwrap();
                    by_name.insert(name.as_str(), i).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let tx = db.begin_write().unwrap();
        {
            let mut accounts = tx.open_table(ACCOUNTS).unwrap();
            for _ in 0..5000 {
                let id = rng.below(n);
                let row = accounts.get(id).unwrap().map(|v| v.value().to_vec());
                if let Some(mut row) = row {
                    row.extend_from_slice(b";touched");
                    accounts.insert(id, row.as_slice()).unwrap();
                }
            }
            for id in (0..n).step_by(7) {
                accounts.remove(id).unwrap();
            }
        }
        tx.commit().unwrap();
        let tx = db.begin_read().unwrap();
        let accounts = tx.open_table(ACCOUNTS).unwrap();
        let by_name = tx.open_table(BY_NAME).unwrap();
        let mut found = 0u64;
        for _ in 0..20_000 {
            if let Some(v) = accounts.get(rng.below(n)).unwrap() {
                found += v.value().len() as u64;
            }
        }
        for r in by_name.range("m".."p").unwrap() {
            let (k, v) = r.unwrap();
            h = fnv(k.value().as_bytes(), h);
            found += v.value();
        }
        for r in accounts.range(1000..3000).unwrap() {
            found += r.unwrap().1.value().len() as u64;
        }
        h = fnv(&found.to_le_bytes(), h);
    }
    report("db", h);
}
