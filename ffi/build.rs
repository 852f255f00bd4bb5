//! Build script: probes the system DPDK with pkg-config (shared libraries),
//! compiles the C shim for DPDK's static-inline functions and generates the
//! raw bindings with bindgen.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Shared linking: EAL then dlopen()s the PMD plugins itself from its
    // compiled-in plugin directory (RTE_EAL_PMD_PATH).
    let dpdk = pkg_config::Config::new()
        .statik(false)
        .atleast_version("22.11")
        .probe("libdpdk")
        .expect("pkg-config could not find libdpdk (install libdpdk-dev)");

    // pkg-config --cflags: include paths plus `-include rte_config.h` and
    // `-march=...`; both the shim and bindgen's clang need them verbatim.
    let cflags = pkg_config::get_variable("libdpdk", "cflags").ok();
    let cflags: Vec<String> = match cflags {
        Some(c) if !c.trim().is_empty() => c.split_whitespace().map(String::from).collect(),
        _ => {
            let out = std::process::Command::new(
                env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()),
            )
            .args(["--cflags", "libdpdk"])
            .output()
            .expect("running pkg-config --cflags libdpdk");
            String::from_utf8(out.stdout)
                .expect("pkg-config output is UTF-8")
                .split_whitespace()
                .map(String::from)
                .collect()
        }
    };
    // Keep -I, -include <file>, -march, -D; drop anything else.
    let mut clang_args: Vec<String> = Vec::new();
    let mut it = cflags.iter();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(file) = it.next() {
                clang_args.push(f.clone());
                clang_args.push(file.clone());
            }
        } else if f.starts_with("-I") || f.starts_with("-D") || f.starts_with("-march") {
            clang_args.push(f.clone());
        }
    }
    for p in &dpdk.include_paths {
        let arg = format!("-I{}", p.display());
        if !clang_args.contains(&arg) {
            clang_args.push(arg);
        }
    }

    // The C shim.
    let mut cc = cc::Build::new();
    cc.file("csrc/shim.c")
        .include("csrc")
        .opt_level(3)
        .warnings(true);
    for a in &clang_args {
        cc.flag(a);
    }
    cc.compile("sluice_shim");

    // Raw bindings.
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let bindings = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_args(&clang_args)
        .clang_arg("-Icsrc")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .use_core()
        .generate_cstr(true)
        // DPDK's doc comments contain indented text rustdoc would run as
        // doctests.
        .generate_comments(false)
        .layout_tests(true)
        .derive_default(true)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        // Packed + aligned structs that bindgen cannot lay out faithfully
        // are reachable from the allowlist only through pointers.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_.*")
        .opaque_type("rte_mempool")
        .opaque_type("rte_ring")
        .opaque_type("rte_eth_dev_data")
        .opaque_type("rte_eth_fp_ops")
        // EAL / lcores / launch / version / cycles
        .allowlist_function("rte_eal_init")
        .allowlist_function("rte_eal_cleanup")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_pdump_init")
        .allowlist_function("rte_pdump_uninit")
        .allowlist_function("rte_eal_remote_launch")
        .allowlist_function("rte_eal_wait_lcore")
        .allowlist_function("rte_eal_mp_wait_lcore")
        .allowlist_function("rte_get_main_lcore")
        .allowlist_function("rte_get_next_lcore")
        .allowlist_function("rte_lcore_count")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_version")
        // mempool / mbuf
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_mempool_avail_count")
        .allowlist_function("rte_mempool_in_use_count")
        .allowlist_type("rte_mbuf")
        // ring
        .allowlist_function("rte_ring_create")
        .allowlist_function("rte_ring_free")
        .allowlist_var("RING_F_SP_ENQ")
        .allowlist_var("RING_F_SC_DEQ")
        .allowlist_var("RING_F_EXACT_SZ")
        // ethdev
        .allowlist_function("rte_eth_dev_get_port_by_name")
        .allowlist_function("rte_eth_dev_count_avail")
        .allowlist_function("rte_eth_dev_is_valid_port")
        .allowlist_function("rte_eth_dev_info_get")
        .allowlist_function("rte_eth_dev_configure")
        .allowlist_function("rte_eth_dev_adjust_nb_rx_tx_desc")
        .allowlist_function("rte_eth_rx_queue_setup")
        .allowlist_function("rte_eth_tx_queue_setup")
        .allowlist_function("rte_eth_dev_start")
        .allowlist_function("rte_eth_dev_stop")
        .allowlist_function("rte_eth_dev_close")
        .allowlist_function("rte_eth_dev_set_mtu")
        .allowlist_function("rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_promiscuous_disable")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_link_get_nowait")
        .allowlist_function("rte_eth_stats_get")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_eth_link")
        .allowlist_type("rte_ether_addr")
        .allowlist_var("RTE_ETH_MQ_RX_RSS")
        .allowlist_var("RTE_ETH_MQ_RX_NONE")
        .allowlist_var("RTE_ETH_MQ_TX_NONE")
        .allowlist_var("RTE_MBUF_F_.*")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_EAL_PMD_PATH")
        .allowlist_var("RTE_MAX_QUEUES_PER_PORT")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE")
        .allowlist_var("RTE_ETHER_.*_LEN")
        .allowlist_var("RTE_ETH_SPEED_NUM_.*")
        // RTE_BIT64-based flag macros (RTE_ETH_RSS_*, RTE_ETH_TX_OFFLOAD_*)
        // are not evaluated by bindgen: the shim exports them as constants.
        // shim
        .allowlist_function("sluice_.*")
        .allowlist_var("sluice_.*")
        .generate()
        .expect("bindgen failed on csrc/wrapper.h");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");
}
