//! Fills session tables to 100% of capacity: every insert must succeed
//! (the index holds 2 x capacity keys at <= 90% load).

use sluice_dataplane::session::{Dir, InsertError, Session4, SessionTable, Tuple4};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn random_session(rng: &mut Rng) -> Session4 {
    let a = rng.next();
    let b = rng.next();
    let c = rng.next();
    Session4 {
        client: a as u32,
        vip: (a >> 32) as u32,
        member: b as u32,
        snat: (b >> 32) as u32,
        cport: c as u16,
        vport: (c >> 16) as u16,
        mport: (c >> 32) as u16,
        sport: (c >> 48) as u16,
        last_seen: 0,
        vs: (a % 1000) as u16,
        proto: if c & 1 == 0 { 6 } else { 17 },
        state: 0,
    }
}

/// Realistic: one VIP, a few members, clients from a /16 with ephemeral
/// ports, source NAT from a small pool with sequential ports.
fn structured_session(i: u32) -> Session4 {
    let client = 0x0a00_0000 + (i / 28_000);
    let cport = 32_768 + (i % 28_000) as u16;
    Session4 {
        client,
        vip: 0xc633_6401,
        member: 0xac10_0001 + (i % 16),
        snat: 0x6440_0001 + (i % 4),
        cport,
        vport: 443,
        mport: 8443,
        sport: 1024 + ((i / 4) % 64_000) as u16,
        last_seen: i,
        vs: 1,
        proto: 6,
        state: 0,
    }
}

fn fill(cap: u32, mut make: impl FnMut(u32) -> Session4) -> (SessionTable, Vec<Session4>) {
    let mut t = SessionTable::<Session4>::with_capacity(cap);
    let mut all = Vec::with_capacity(cap as usize);
    let mut i = 0;
    while t.len() < cap {
        let s = make(i);
        i += 1;
        match t.insert(s) {
            Ok(idx) => {
                assert_eq!(*t.get(idx), s);
                all.push(s);
            }
            Err(InsertError::Exists) => {} // duplicate random tuple
            Err(InsertError::Full) => panic!("Full at {} of {cap}", t.len()),
        }
    }
    assert_eq!(t.insert(make(i)), Err(InsertError::Full));
    (t, all)
}

fn check_all(t: &SessionTable, all: &[Session4]) {
    for s in all {
        let f = s.forward();
        let (idx, dir) = t.lookup(&f, f.hash()).expect("forward found");
        assert_eq!((t.get(idx), dir), (s, Dir::Forward));
        let r = s.reverse();
        let (idx2, dir) = t.lookup(&r, r.hash()).expect("reverse found");
        assert_eq!((idx2, dir), (idx, Dir::Reverse));
    }
}

#[test]
fn session_fill_random_1000() {
    for seed in 0..20 {
        let mut rng = Rng(seed);
        let (t, all) = fill(1000, |_| random_session(&mut rng));
        t.check_consistency().unwrap();
        check_all(&t, &all);
    }
}

#[test]
fn session_fill_random_100k() {
    let mut rng = Rng(42);
    let (mut t, all) = fill(100_000, |_| random_session(&mut rng));
    t.check_consistency().unwrap();
    check_all(&t, &all);
    // Churn at full load: remove a quarter, insert new ones, full again.
    for s in all.iter().step_by(4) {
        let f = s.forward();
        let (idx, _) = t.lookup(&f, f.hash()).unwrap();
        t.remove(idx);
    }
    assert_eq!(t.len(), 75_000);
    while t.len() < 100_000 {
        match t.insert(random_session(&mut rng)) {
            Ok(_) | Err(InsertError::Exists) => {}
            Err(InsertError::Full) => panic!("Full at {}", t.len()),
        }
    }
    t.check_consistency().unwrap();
}

#[test]
fn session_fill_structured_100k() {
    let (t, all) = fill(100_000, structured_session);
    t.check_consistency().unwrap();
    check_all(&t, &all);
}

#[test]
fn session_fill_small_capacities() {
    for cap in 1..=300 {
        for seed in 0..4 {
            let mut rng = Rng(u64::from(cap) * 1000 + seed);
            let (t, all) = fill(cap, |_| random_session(&mut rng));
            t.check_consistency().unwrap();
            check_all(&t, &all);
        }
    }
}

#[test]
fn session_lookup_misses() {
    let mut rng = Rng(7);
    let (t, _) = fill(10_000, |_| random_session(&mut rng));
    for _ in 0..10_000 {
        let s = random_session(&mut rng);
        let f: Tuple4 = s.forward();
        assert_eq!(t.lookup(&f, f.hash()), None);
    }
}
