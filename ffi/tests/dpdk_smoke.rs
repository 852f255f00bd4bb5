//! End-to-end smoke test against the system DPDK, with no NIC and no
//! hugepages: EAL (`--no-huge --no-shconf`; `--in-memory` is refused with
//! `--no-huge` by DPDK 22.11) with net_null and net_ring vdevs
//! and one worker lcore. Needs root. EAL can only be initialised once per
//! process, so everything runs in sequence from this `main`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sluice_ffi::{
    lcore_id, mbuf_ring, tsc, tsc_hz, version, Eal, L4Csum, Mbuf, Mempool, Port, PortConfig,
    DEFAULT_DATA_ROOM, HEADROOM, SOCKET_ID_ANY,
};

fn main() {
    // Cargo passes libtest flags (e.g. --list from some tools); only run for real.
    if std::env::args().any(|a| a == "--list") {
        println!("dpdk_smoke: test");
        return;
    }
    smoke();
    println!("test dpdk_smoke ... ok");
    // A panic above exits non-zero; reaching here is one passed test, in the
    // form scripts/test.sh counts.
    println!("1 passed, 0 failed");
}

fn eal_args() -> Vec<String> {
    [
        "dpdk_smoke",
        "-l",
        "0,1",
        "--no-huge",
        "-m",
        "256",
        "--no-shconf",
        "--no-pci",
        "--no-telemetry",
        "--log-level",
        "notice",
        "--vdev",
        "net_null0",
        "--vdev",
        "net_null1",
        "--vdev",
        "net_ring0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn packet(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

fn mbuf_with(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("alloc");
    assert!(m.append(bytes.len()));
    m.data_mut().copy_from_slice(bytes);
    m
}

fn smoke() {
    let v = version();
    println!("{v}");
    assert!(v.starts_with("DPDK 22.11"), "{v}");

    // --- EAL: PMDs come from the default plugin directory (no -d given).
    let eal = Eal::init(&eal_args()).expect("Eal::init");
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(eal.worker_lcores(), vec![1]);
    assert_eq!(lcore_id(), 0);
    assert!(eal.socket_id() >= 0);
    assert!(tsc_hz() > 0);
    let t0 = tsc();
    assert!(tsc() >= t0);

    // --- A second init fails cleanly.
    let err = Eal::init(&eal_args()).unwrap_err();
    println!("second init: {err}");
    assert_eq!(err.code, 114); // EALREADY

    // --- Mempool and mbuf manipulation.
    let pool = Mempool::new("smoke_pool", 4095, 32, DEFAULT_DATA_ROOM, SOCKET_ID_ANY)
        .expect("Mempool::new");
    let dup = Mempool::new("smoke_pool", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap_err();
    println!("duplicate pool: {dup}");
    let base_in_use = pool.in_use();
    assert_eq!(base_in_use, 0);
    assert_eq!(pool.available(), 4095);
    {
        let mut m = pool.alloc().expect("alloc");
        assert_eq!(pool.in_use(), 1);
        assert!(m.is_empty());
        assert_eq!(m.headroom(), usize::from(HEADROOM));
        assert_eq!(m.tailroom(), usize::from(DEFAULT_DATA_ROOM - HEADROOM));
        assert!(m.append(10));
        m.data_mut().copy_from_slice(b"0123456789");
        assert_eq!(m.len(), 10);
        assert!(m.prepend(4));
        assert_eq!(m.len(), 14);
        assert_eq!(m.headroom(), usize::from(HEADROOM) - 4);
        m.data_mut()[..4].copy_from_slice(b"HDR:");
        assert_eq!(m.data(), b"HDR:0123456789");
        assert!(m.adj(4));
        assert_eq!(m.data(), b"0123456789");
        assert!(m.trim(5));
        assert_eq!(m.data(), b"01234");
        // Refused operations leave the mbuf untouched.
        assert!(!m.trim(6));
        assert!(!m.adj(6));
        assert!(!m.prepend(usize::from(HEADROOM) + 1));
        assert!(!m.append(m.tailroom() + 1));
        assert!(!m.append(1 << 20));
        assert_eq!(m.data(), b"01234");
        assert_eq!(m.rss_hash(), None);
        m.prefetch();
        m.set_tx_cksum_offload(14, 20, true, L4Csum::Tcp);
        assert_eq!(m.tx_header_lens(), (14, 20));
        assert_eq!(m.tx_offload_flags(), (1 << 52) | (1 << 54) | (1 << 55));
        m.set_tx_cksum_offload(18, 40, false, L4Csum::Udp);
        assert_eq!(m.tx_header_lens(), (18, 40));
        assert_eq!(m.tx_offload_flags(), (3 << 52) | (1 << 56));
        m.clear_tx_offload();
        assert_eq!(m.tx_offload_flags(), 0);
        assert_eq!(m.tx_header_lens(), (0, 0));
        // Mbufs can be freed on another thread.
        std::thread::spawn(move || drop(m)).join().unwrap();
    }
    assert_eq!(pool.in_use(), base_in_use);
    {
        let mut v = Vec::with_capacity(16);
        assert!(pool.alloc_bulk(&mut v, 16));
        assert_eq!(pool.in_use(), 16);
        assert!(
            !pool.alloc_bulk(&mut v, 1),
            "alloc_bulk must not grow the vec"
        );
        assert_eq!(v.capacity(), 16);
        // Freed in one call: the vec is left empty, its capacity kept.
        Mbuf::free_bulk(&mut v);
        assert!(v.is_empty() && v.capacity() == 16);
        assert_eq!(pool.in_use(), base_in_use);
        Mbuf::free_bulk(&mut v);
    }
    assert_eq!(pool.in_use(), base_in_use);

    // --- Ports.
    assert_eq!(Port::count(), 3);
    assert!(Port::by_name("net_nope9").is_err());
    let null0 = Port::by_name("net_null0").expect("net_null0");
    let null1 = Port::by_name("net_null1,whatever=1").expect("net_null1 (devargs ignored)");
    assert_ne!(null0.id(), null1.id());
    let info = null0.info().expect("info");
    println!("net_null0: port {} {info:?}", null0.id());
    assert_eq!(info.driver, "net_null");
    assert!(info.max_rx_queues >= 1 && info.max_tx_queues >= 1);

    let cfg = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 512,
        tx_desc: 512,
        mtu: 1500,
        rss: true,
        tx_cksum_offload: true,
        socket: SOCKET_ID_ANY,
    };
    let too_big = PortConfig {
        mtu: 9000,
        ..cfg.clone()
    };
    let e = null0.configure(&too_big, &pool).unwrap_err();
    println!("jumbo refused: {e}");
    // No queue to take before the port is configured.
    assert_eq!(null0.rx_queue(0).unwrap_err().code, 22, "unconfigured port");
    let setup = null0.configure(&cfg, &pool).expect("configure net_null0");
    println!("net_null0 setup: {setup:?}");
    assert!(!setup.rss, "RSS needs more than one RX queue");
    assert_eq!(
        setup.tx_cksum_offload,
        info.tx_ipv4_cksum && info.tx_tcp_cksum && info.tx_udp_cksum
    );
    // Queues are taken after start: start refuses while handles are alive.
    {
        let early = null0.tx_queue(0).expect("tx_queue before start");
        assert_eq!(
            null0.start().unwrap_err().code,
            16,
            "start with a live handle"
        );
        drop(early);
    }
    null0.start().expect("start");
    let busy = null0.configure(&cfg, &pool).unwrap_err();
    assert_eq!(busy.code, 16, "configure on a started port: {busy}");
    let mac = null0.mac().expect("mac");
    println!("net_null0 mac {mac:02x?} link {:?}", null0.link());
    assert!(null0.link().up);
    match null0.promiscuous(true) {
        Ok(()) => {}
        Err(e) => assert_eq!(e.code, 95, "{e}"), // ENOTSUP is acceptable
    }

    // Queue handles: each configured queue once, unconfigured ones never.
    let mut rxq = null0.rx_queue(0).expect("rx_queue");
    let txq = null0.tx_queue(0).expect("tx_queue");
    assert_eq!((rxq.port_id(), rxq.queue_id()), (null0.id(), 0));
    assert_eq!((txq.port_id(), txq.queue_id()), (null0.id(), 0));
    let twice = null0.rx_queue(0).unwrap_err();
    println!("rx queue taken twice: {twice}");
    assert_eq!(twice.code, 16);
    assert_eq!(null0.tx_queue(0).unwrap_err().code, 16, "tx taken twice");
    assert_eq!(null0.rx_queue(5).unwrap_err().code, 22, "unconfigured rx");
    assert_eq!(null0.tx_queue(1).unwrap_err().code, 22, "unconfigured tx");
    assert_eq!(null1.rx_queue(0).unwrap_err().code, 22, "unconfigured port");
    // Handles move to other threads (Send).
    let txq_back = std::thread::spawn(move || txq).join().unwrap();
    let mut txq = txq_back;

    let mut tx: Vec<Mbuf> = Vec::with_capacity(8);
    for i in 0..8 {
        tx.push(mbuf_with(&pool, &packet(i, 64)));
    }
    assert_eq!(txq.burst(&mut tx), 8);
    assert!(tx.is_empty());
    assert_eq!(txq.burst(&mut tx), 0, "empty vec");

    let mut rx: Vec<Mbuf> = Vec::with_capacity(32);
    let got = rxq.burst(&mut rx, 32);
    assert!(got > 0, "net_null produces packets");
    assert_eq!(rx.len(), got);
    assert_eq!(rx.capacity(), 32);
    assert!(rx.iter().all(|m| m.len() == 64));
    // Bounded by max and by spare capacity, never grows.
    let got2 = rxq.burst(&mut rx, 1);
    assert!(got2 <= 1);
    let mut small: Vec<Mbuf> = Vec::with_capacity(4);
    assert!(rxq.burst(&mut small, 100) <= 4);
    assert_eq!(small.capacity(), 4);
    assert_eq!(rxq.burst(&mut small, 0), 0, "max 0");
    let received = (got + got2 + small.len()) as u64;
    let st = null0.stats().expect("stats");
    println!("net_null0 stats {st:?}");
    assert_eq!(st.opackets, 8);
    assert_eq!(st.ipackets, received);
    drop((rx, small));

    // The port cannot be stopped, reconfigured or closed under a live handle.
    let e = null0.stop().unwrap_err();
    println!("stop with live handles: {e}");
    assert_eq!(e.code, 16);
    drop(rxq);
    assert_eq!(null0.stop().unwrap_err().code, 16, "tx handle still alive");
    null0.close(); // refused silently: the port is still there
    assert!(Port::by_name("net_null0").is_ok(), "close refused");
    assert!(null0.link().up, "still running");
    drop(txq);
    // Dropped handles return their queues.
    let rxq = null0.rx_queue(0).expect("rx queue again after drop");
    drop(rxq);
    null0.stop().expect("stop once the handles are gone");
    // A stopped port is not reconfigured under a live handle either.
    let idle = null0
        .tx_queue(0)
        .expect("queue of a stopped, configured port");
    let e = null0.configure(&cfg, &pool).unwrap_err();
    println!("configure with a live handle: {e}");
    assert_eq!(e.code, 16);
    drop(idle);
    null0.start().expect("restart");

    // --- net_ring0 without devargs is a loopback: TX queue i feeds RX queue i.
    let ring_port = Port::by_name("net_ring0").expect("net_ring0");
    println!(
        "net_ring0: port {} {:?}",
        ring_port.id(),
        ring_port.info().unwrap()
    );
    ring_port
        .configure(&cfg, &pool)
        .expect("configure net_ring0");
    ring_port.start().expect("start net_ring0");
    let mut ring_rx = ring_port.rx_queue(0).expect("net_ring0 rx queue");
    let mut ring_tx = ring_port.tx_queue(0).expect("net_ring0 tx queue");
    let sent_bytes: Vec<Vec<u8>> = (0..16).map(|i| packet(i, 60 + i)).collect();
    let mut tx: Vec<Mbuf> = Vec::with_capacity(16);
    for b in &sent_bytes {
        tx.push(mbuf_with(&pool, b));
    }
    assert_eq!(ring_tx.burst(&mut tx), 16);
    let mut rx: Vec<Mbuf> = Vec::with_capacity(32);
    assert_eq!(ring_rx.burst(&mut rx, 32), 16);
    for (m, b) in rx.iter().zip(&sent_bytes) {
        assert_eq!(m.data(), &b[..], "byte-identical loopback");
    }
    // Partial TX: fill the loopback ring until it refuses, the rest stays.
    drop(rx);
    let mut many: Vec<Mbuf> = Vec::with_capacity(4096);
    for i in 0..4000 {
        match pool.alloc() {
            Some(mut m) => {
                assert!(m.append(60));
                m.data_mut()[0] = i as u8;
                many.push(m)
            }
            None => break,
        }
    }
    let before = many.len();
    let accepted = ring_tx.burst(&mut many);
    println!("net_ring0 accepted {accepted} of {before}");
    assert!(
        accepted > 0 && accepted < before,
        "the PMD ring is smaller than {before}"
    );
    assert_eq!(many.len(), before - accepted);
    assert_eq!(
        many[0].data()[0],
        accepted as u8,
        "unsent packets keep their order"
    );
    drop(many);
    let mut rx: Vec<Mbuf> = Vec::with_capacity(256);
    let mut drained = 0;
    loop {
        rx.clear();
        let n = ring_rx.burst(&mut rx, 256);
        if n == 0 {
            break;
        }
        for (k, m) in rx.iter().enumerate() {
            assert_eq!(m.data()[0], (drained + k) as u8);
        }
        drained += n;
    }
    assert_eq!(drained, accepted);
    drop(rx);
    let rst = ring_port.stats().unwrap();
    println!("net_ring0 stats {rst:?}");
    assert_eq!(rst.opackets, 16 + accepted as u64);
    assert_eq!(rst.ipackets, 16 + accepted as u64);
    // An RX handle bursts on an EAL worker lcore and comes back with it.
    let mut ring_tx2 = ring_tx;
    let mut pkts = vec![
        mbuf_with(&pool, &packet(1, 64)),
        mbuf_with(&pool, &packet(2, 64)),
    ];
    assert_eq!(ring_tx2.burst(&mut pkts), 2);
    let (back_tx, back_rx) = std::sync::mpsc::channel();
    eal.launch(eal.worker_lcores()[0], move || {
        let mut rx: Vec<Mbuf> = Vec::with_capacity(8);
        let n = ring_rx.burst(&mut rx, 8);
        let ok = n == 2 && rx[1].data() == &packet(2, 64)[..];
        back_tx.send(ring_rx).unwrap();
        i32::from(ok)
    })
    .expect("launch rx on worker");
    assert_eq!(eal.wait_all(), vec![(eal.worker_lcores()[0], 1)]);
    let ring_rx = back_rx.recv().unwrap();
    drop((ring_rx, ring_tx2));

    // --- mbuf_ring to a worker lcore.
    const N: usize = 1000;
    let (mut prod, mut cons) = mbuf_ring("smoke_ring", 256, SOCKET_ID_ANY).expect("mbuf_ring");
    assert!(
        mbuf_ring("smoke_ring", 256, SOCKET_ID_ANY).is_err(),
        "duplicate ring name"
    );
    let worker = eal.worker_lcores()[0];
    eal.launch(worker, move || {
        assert_eq!(lcore_id(), 1);
        let mut buf: Vec<Mbuf> = Vec::with_capacity(64);
        let mut count = 0usize;
        let deadline = tsc() + 10 * tsc_hz();
        while count < N && tsc() < deadline {
            buf.clear();
            cons.dequeue_burst(&mut buf, 64);
            for m in &buf {
                let want = packet(count, 64);
                if m.data() != &want[..] {
                    return -1;
                }
                count += 1;
            }
        }
        count as i32
    })
    .expect("launch");
    // Launching on a busy, a main or a non-existent lcore fails.
    let gate = Arc::new(AtomicBool::new(false));
    assert!(eal.launch(eal.main_lcore(), || 0).is_err());
    assert!(eal.launch(99, || 0).is_err());
    let mut next = 0usize;
    let mut batch: Vec<Mbuf> = Vec::with_capacity(32);
    while next < N || !batch.is_empty() {
        while batch.len() < 32 && next < N {
            batch.push(mbuf_with(&pool, &packet(next, 64)));
            next += 1;
        }
        if prod.enqueue_burst(&mut batch) == 0 {
            std::hint::spin_loop();
        }
    }
    let busy = eal.launch(worker, || 0);
    // The worker may already be done; if it is still running it must be busy.
    if let Err(e) = &busy {
        println!("busy lcore: {e}");
    }
    let results = eal.wait_all();
    println!("wait_all: {results:?}");
    if busy.is_ok() {
        // Our extra job ran after the counting one had already finished.
        assert_eq!(results, vec![(worker, 0)]);
    } else {
        assert_eq!(results, vec![(worker, N as i32)]);
    }
    // Explicit EBUSY check with a gated job.
    let g = Arc::clone(&gate);
    eal.launch(worker, move || {
        while !g.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        7
    })
    .unwrap();
    assert_eq!(eal.launch(worker, || 0).unwrap_err().code, 16); // EBUSY
    gate.store(true, Ordering::Release);
    assert_eq!(eal.wait_all(), vec![(worker, 7)]);
    // A panicking job is reported, not fatal.
    println!("(the next panic message is expected)");
    eal.launch(worker, || panic!("expected test panic"))
        .unwrap();
    assert_eq!(eal.wait_all(), vec![(worker, i32::MIN)]);

    // Mbufs left in a ring are freed with it (the consumer half was dropped
    // with the worker's closure, so dropping the producer frees the ring).
    let in_use = pool.in_use();
    let mut left = vec![pool.alloc().unwrap(), pool.alloc().unwrap()];
    assert_eq!(prod.enqueue_burst(&mut left), 2);
    assert_eq!(prod.len(), 2);
    assert_eq!(pool.in_use(), in_use + 2);
    drop(prod);
    assert_eq!(pool.in_use(), in_use);

    // --- Teardown: ports give back their mbufs and the pool.
    null0.stop().expect("stop");
    null0.close();
    null1.close();
    ring_port.close();
    assert!(
        Port::by_name("net_null0").is_err(),
        "closed vdev port is released"
    );
    assert!(null0.rx_queue(0).is_err(), "closed port has no queues");
    assert_eq!(pool.in_use(), 0, "every mbuf is back in the pool");
    drop(pool);
    drop(eal);
    assert_eq!(Port::count(), 0, "no ports once the EAL is gone");
    assert!(Mempool::new("late", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).is_err());
}
