//! Large tables: memory per session and filling 10,000,000 sessions.
//! The fill is `#[ignore]`d (slow in debug); run it with
//! `cargo test -p sluice-dataplane --release --test session_10m -- --ignored`.

use std::time::Instant;

use sluice_dataplane::session::{InsertError, Session4, SessionTable};

fn session(i: u32) -> Session4 {
    // Distinct forward tuples (client, cport) and reverse tuples (snat, sport).
    Session4 {
        client: 0x0a00_0000 + (i >> 14),
        vip: 0xc633_6401,
        member: 0xac10_0001 + (i % 64),
        snat: 0x6440_0000 + (i >> 14),
        cport: 0x4000 + (i & 0x3fff) as u16,
        vport: 443,
        mport: 8443,
        sport: 0x8000 + (i & 0x3fff) as u16,
        last_seen: i,
        vs: 0,
        proto: 6,
        state: 0,
    }
}

fn per_session(cap: u32) -> f64 {
    let t = SessionTable::<Session4>::with_capacity(cap);
    t.memory_bytes() as f64 / f64::from(cap)
}

#[test]
fn session_memory_per_session() {
    for cap in [1_048_576, 10_000_000] {
        let per = per_session(cap);
        println!("capacity {cap}: {per:.2} bytes/session");
        assert!(per <= 64.0, "{cap}: {per} bytes/session");
    }
}

fn fill_and_check(cap: u32) {
    let start = Instant::now();
    let mut t = SessionTable::<Session4>::with_capacity(cap);
    let alloc = start.elapsed();
    let start = Instant::now();
    for i in 0..cap {
        if let Err(e) = t.insert(session(i)) {
            panic!("insert {i} of {cap}: {e:?}");
        }
    }
    let fill = start.elapsed();
    assert_eq!(t.len(), cap);
    assert_eq!(t.insert(session(cap)), Err(InsertError::Full));
    let per = t.memory_bytes() as f64 / f64::from(cap);
    assert!(per <= 64.0, "{per} bytes/session");

    // Lookups of both directions, batched as the pipeline does.
    let start = Instant::now();
    let mut found = 0u32;
    let mut i = 0;
    while i < cap {
        let n = 32.min(cap - i);
        let mut tuples = [Default::default(); 32];
        let mut hashes = [0u64; 32];
        for k in 0..n as usize {
            let s = session(i + k as u32);
            tuples[k] = if k % 2 == 0 { s.forward() } else { s.reverse() };
            hashes[k] = tuples[k].hash();
            t.prefetch(hashes[k]);
        }
        for k in 0..n as usize {
            if let Some((idx, _)) = t.lookup(&tuples[k], hashes[k]) {
                found += 1;
                t.prefetch_entry(idx);
            }
        }
        i += n;
    }
    let look = start.elapsed();
    assert_eq!(found, cap);

    let start = Instant::now();
    let mut removed = 0;
    while removed < cap / 2 {
        removed += t.sweep(1024, |s| s.last_seen % 2 == 0, |_, _| {});
    }
    let sweep = start.elapsed();
    assert_eq!(t.len(), cap - cap / 2);
    println!(
        "capacity {cap}: {per:.2} bytes/session; alloc {alloc:?}, fill {:.0} ns/insert, \
         lookup {:.0} ns, sweep+remove {sweep:?}",
        fill.as_nanos() as f64 / f64::from(cap),
        look.as_nanos() as f64 / f64::from(cap),
    );
    if cap <= 1 << 20 {
        t.check_consistency().unwrap();
    }
}

#[test]
#[ignore = "slow in debug builds; run with --release -- --ignored"]
fn session_fill_1m() {
    fill_and_check(1_048_576);
}

#[test]
#[ignore = "slow in debug builds; run with --release -- --ignored"]
fn session_fill_10m() {
    fill_and_check(10_000_000);
}
