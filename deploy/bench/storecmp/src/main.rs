//! Side-by-side: redb vs fjall for Herald's log workload (fsynced appends, ordered scans).
use std::time::Instant;

const VALUE: [u8; 136] = [b'x'; 136];

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(1_795_000_000_000u64 + i / 100).to_be_bytes());
    k[8..].copy_from_slice(&(i % 100).to_be_bytes());
    k
}

fn report(store: &str, case: &str, n: u64, t: Instant) {
    let s = t.elapsed().as_secs_f64();
    println!("| {store} | {case} | {:.0}/s |", n as f64 / s);
}

fn redb_run(dir: &std::path::Path) {
    use redb::{ReadableDatabase, TableDefinition};
    const T: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("events");
    let db = redb::Database::create(dir.join("x.redb")).unwrap();
    let mut i = 0u64;
    let t = Instant::now();
    for _ in 0..2000 {
        let tx = db.begin_write().unwrap();
        tx.open_table(T).unwrap().insert(&key(i), VALUE.as_slice()).unwrap();
        tx.commit().unwrap();
        i += 1;
    }
    report("redb", "single-record fsynced commits", 2000, t);
    let t = Instant::now();
    for _ in 0..400 {
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(T).unwrap();
            for _ in 0..1000 {
                table.insert(&key(i), VALUE.as_slice()).unwrap();
                i += 1;
            }
        }
        tx.commit().unwrap();
    }
    report("redb", "1000-record fsynced batches (records)", 400_000, t);
    let t = Instant::now();
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(T).unwrap();
    let mut n = 0u64;
    let start = key(0);
    for item in table.range::<&[u8; 16]>(&start..).unwrap() {
        let (_, v) = item.unwrap();
        n += v.value().len() as u64 / 136;
    }
    report("redb", "ordered scan (records)", n, t);
}

fn fjall_run(dir: &std::path::Path) {
    use fjall::{Database, KeyspaceCreateOptions, PersistMode};
    let db = Database::builder(dir.join("fj")).open().unwrap();
    let ks = db.keyspace("events", KeyspaceCreateOptions::default).unwrap();
    let mut i = 0u64;
    let t = Instant::now();
    for _ in 0..2000 {
        ks.insert(key(i), VALUE.as_slice()).unwrap();
        db.persist(PersistMode::SyncAll).unwrap();
        i += 1;
    }
    report("fjall", "single-record fsynced commits", 2000, t);
    let t = Instant::now();
    for _ in 0..400 {
        let mut b = db.batch();
        for _ in 0..1000 {
            b.insert(&ks, key(i), VALUE.as_slice());
            i += 1;
        }
        b.commit().unwrap();
        db.persist(PersistMode::SyncAll).unwrap();
    }
    report("fjall", "1000-record fsynced batches (records)", 400_000, t);
    let t = Instant::now();
    let mut n = 0u64;
    for kv in ks.range(key(0)..) {
        let v = kv.value().unwrap();
        n += v.len() as u64 / 136;
    }
    report("fjall", "ordered scan (records)", n, t);
}

fn main() {
    let dir = std::env::temp_dir().join(format!("storecmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("| store | case | rate |\n|---|---|---|");
    redb_run(&dir);
    fjall_run(&dir);
    for (name, sub) in [("redb", "x.redb"), ("fjall", "fj")] {
        let out = std::process::Command::new("du").args(["-sb"]).arg(dir.join(sub)).output().unwrap();
        println!(
            "| {name} | size for 402,000 records | {} |",
            String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("?")
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
