//! Model test: random sequences of insert/remove/lookup/sweep on a small
//! table, compared against a std HashMap model.

use std::collections::HashMap;

use proptest::prelude::*;
use sluice_dataplane::session::{Dir, InsertError, Session4, SessionTable, Tuple4};

#[derive(Clone, Debug)]
enum Op {
    /// A session from a small domain, so tuples collide often.
    Insert {
        c: u8,
        cport: u8,
        m: u8,
        mport: u8,
        snat: Option<u8>,
        ts: u8,
    },
    /// Remove the `n`th live session (modulo), or a free index.
    Remove(u16),
    /// Look up a tuple from the same small domain.
    Lookup { c: u8, cport: u8, rev: bool },
    /// Look up both tuples of the `n`th live session.
    LookupLive(u16),
    /// Sweep `budget` entries, expiring last_seen < `before`.
    Sweep { budget: u8, before: u8 },
    /// Update last_seen of the `n`th live session through get_mut.
    Touch(u16, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..6u8, 0..4u8, 0..3u8, 0..3u8, proptest::option::of(0..4u8), any::<u8>()).prop_map(
            |(c, cport, m, mport, snat, ts)| Op::Insert { c, cport, m, mport, snat, ts }
        ),
        2 => any::<u16>().prop_map(Op::Remove),
        2 => (0..6u8, 0..4u8, any::<bool>()).prop_map(|(c, cport, rev)| Op::Lookup { c, cport, rev }),
        2 => any::<u16>().prop_map(Op::LookupLive),
        1 => (0..20u8, any::<u8>()).prop_map(|(budget, before)| Op::Sweep { budget, before }),
        1 => (any::<u16>(), any::<u8>()).prop_map(|(n, ts)| Op::Touch(n, ts)),
    ]
}

const VIP: u32 = 0xc0a8_0001;
const SNAT: u32 = 0x6440_0000;

fn session(c: u8, cport: u8, m: u8, mport: u8, snat: Option<u8>, ts: u8) -> Session4 {
    let client = 0x0a00_0000 + u32::from(c);
    let cport = 1000 + u16::from(cport);
    let (snat, sport) = match snat {
        Some(p) => (SNAT, 2000 + u16::from(p)),
        None => (client, cport),
    };
    Session4 {
        client,
        vip: VIP,
        member: 0xac10_0000 + u32::from(m),
        snat,
        cport,
        vport: 80,
        mport: 8000 + u16::from(mport),
        sport,
        last_seen: u32::from(ts),
        vs: 0,
        proto: 6,
        state: 0,
    }
}

#[derive(Default)]
struct Model {
    live: HashMap<u32, Session4>,
    keys: HashMap<Tuple4, (u32, Dir)>,
    cursor: u32,
}

impl Model {
    fn sorted_live(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.live.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn remove(&mut self, idx: u32) {
        let s = self.live.remove(&idx).unwrap();
        self.keys.remove(&s.forward());
        self.keys.remove(&s.reverse());
    }
}

fn run(cap: u32, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut t = SessionTable::<Session4>::with_capacity(cap);
    let mut m = Model::default();
    for op in ops {
        match op {
            Op::Insert {
                c,
                cport,
                m: mem,
                mport,
                snat,
                ts,
            } => {
                let s = session(c, cport, mem, mport, snat, ts);
                let (f, r) = (s.forward(), s.reverse());
                let expect_exists = f == r || m.keys.contains_key(&f) || m.keys.contains_key(&r);
                let got = t.insert(s);
                if expect_exists {
                    prop_assert_eq!(got, Err(InsertError::Exists));
                } else if m.live.len() == cap as usize {
                    prop_assert_eq!(got, Err(InsertError::Full));
                } else {
                    let idx = got.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                    prop_assert!(idx < cap);
                    prop_assert!(m.live.insert(idx, s).is_none());
                    m.keys.insert(f, (idx, Dir::Forward));
                    m.keys.insert(r, (idx, Dir::Reverse));
                }
            }
            Op::Remove(n) => {
                let live = m.sorted_live();
                if live.is_empty() || n % 4 == 0 {
                    // Removing a free entry does nothing.
                    if let Some(free) = (0..cap).find(|i| !m.live.contains_key(i)) {
                        t.remove(free);
                    }
                } else {
                    let idx = live[n as usize % live.len()];
                    t.remove(idx);
                    m.remove(idx);
                }
            }
            Op::Lookup { c, cport, rev } => {
                let tu = if rev {
                    session(0, 0, c % 3, cport % 3, Some(c % 4), 0).reverse()
                } else {
                    session(c, cport, 0, 0, None, 0).forward()
                };
                prop_assert_eq!(t.lookup(&tu, tu.hash()), m.keys.get(&tu).copied());
            }
            Op::LookupLive(n) => {
                let live = m.sorted_live();
                if !live.is_empty() {
                    let idx = live[n as usize % live.len()];
                    let s = m.live[&idx];
                    let (f, r) = (s.forward(), s.reverse());
                    prop_assert_eq!(t.lookup(&f, f.hash()), Some((idx, Dir::Forward)));
                    prop_assert_eq!(t.lookup(&r, r.hash()), Some((idx, Dir::Reverse)));
                    prop_assert_eq!(*t.get(idx), s);
                }
            }
            Op::Touch(n, ts) => {
                let live = m.sorted_live();
                if !live.is_empty() {
                    let idx = live[n as usize % live.len()];
                    t.get_mut(idx).last_seen = u32::from(ts);
                    m.live.get_mut(&idx).unwrap().last_seen = u32::from(ts);
                }
            }
            Op::Sweep { budget, before } => {
                let before = u32::from(before);
                let mut expect = Vec::new();
                if cap > 0 {
                    for _ in 0..u32::from(budget).min(cap) {
                        let idx = m.cursor;
                        m.cursor = (m.cursor + 1) % cap;
                        if m.live.get(&idx).is_some_and(|s| s.last_seen < before) {
                            expect.push(idx);
                        }
                    }
                }
                let mut got = Vec::new();
                let mut examined = 0u32;
                let n = t.sweep(
                    u32::from(budget),
                    |s| {
                        examined += 1;
                        s.last_seen < before
                    },
                    |idx, s| got.push((idx, *s)),
                );
                prop_assert!(examined <= u32::from(budget));
                prop_assert_eq!(n as usize, got.len());
                let got_idx: Vec<u32> = got.iter().map(|g| g.0).collect();
                prop_assert_eq!(&got_idx, &expect);
                for (idx, s) in got {
                    prop_assert_eq!(m.live[&idx], s);
                    m.remove(idx);
                }
            }
        }
        prop_assert_eq!(t.len() as usize, m.live.len());
    }
    t.check_consistency().map_err(TestCaseError::fail)?;
    let mut got: Vec<(u32, Session4)> = t.iter().map(|(i, s)| (i, *s)).collect();
    got.sort_unstable_by_key(|g| g.0);
    let mut want: Vec<(u32, Session4)> = m.live.into_iter().collect();
    want.sort_unstable_by_key(|g| g.0);
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn session_model(cap in 0..40u32, ops in proptest::collection::vec(op(), 0..300)) {
        run(cap, ops)?;
    }
}
