/*
 * Non-inline wrappers for DPDK's static-inline fast-path functions and
 * thread-local accessors (bindgen cannot bind either). Implemented in shim.c.
 */
#ifndef SLUICE_SHIM_H
#define SLUICE_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/* Thread-locals: only reachable through these. */
int sluice_errno(void);
unsigned int sluice_lcore_id(void);

uint64_t sluice_rdtsc(void);
uint64_t sluice_tsc_hz(void);
void sluice_prefetch0(const void *p);

uint16_t sluice_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t sluice_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *sluice_pktmbuf_alloc(struct rte_mempool *mp);
int sluice_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n);
void sluice_pktmbuf_free(struct rte_mbuf *m);
void sluice_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int n);
uint16_t sluice_pktmbuf_data_room_size(struct rte_mempool *mp);

void *sluice_pktmbuf_mtod(struct rte_mbuf *m);
char *sluice_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *sluice_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *sluice_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int sluice_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t sluice_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t sluice_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t sluice_mbuf_refcnt(const struct rte_mbuf *m);

unsigned int sluice_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf *const *pkts, unsigned int n);
unsigned int sluice_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **pkts, unsigned int n);
unsigned int sluice_ring_count(const struct rte_ring *r);

/* Flag values built from RTE_BIT64 macros, resolved by the C compiler. */
extern const uint64_t sluice_rss_ip;
extern const uint64_t sluice_rss_tcp;
extern const uint64_t sluice_rss_udp;
extern const uint64_t sluice_tx_offload_ipv4_cksum;
extern const uint64_t sluice_tx_offload_tcp_cksum;
extern const uint64_t sluice_tx_offload_udp_cksum;
extern const uint64_t sluice_rx_offload_ipv4_cksum;

#endif
