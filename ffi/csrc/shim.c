#include <rte_config.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "shim.h"

int sluice_errno(void) { return rte_errno; }
unsigned int sluice_lcore_id(void) { return rte_lcore_id(); }

uint64_t sluice_rdtsc(void) { return rte_rdtsc(); }
uint64_t sluice_tsc_hz(void) { return rte_get_tsc_hz(); }
void sluice_prefetch0(const void *p) { rte_prefetch0(p); }

uint16_t sluice_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t sluice_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *sluice_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int sluice_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void sluice_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void sluice_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int n)
{
	rte_pktmbuf_free_bulk(mbufs, n);
}

uint16_t sluice_pktmbuf_data_room_size(struct rte_mempool *mp)
{
	return rte_pktmbuf_data_room_size(mp);
}

void *sluice_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
char *sluice_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *sluice_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
char *sluice_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
int sluice_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
uint16_t sluice_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t sluice_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
uint16_t sluice_mbuf_refcnt(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }

unsigned int sluice_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf *const *pkts, unsigned int n)
{
	return rte_ring_enqueue_burst(r, (void *const *)pkts, n, NULL);
}

unsigned int sluice_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **pkts, unsigned int n)
{
	return rte_ring_dequeue_burst(r, (void **)pkts, n, NULL);
}

unsigned int sluice_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

const uint64_t sluice_rss_ip = RTE_ETH_RSS_IP;
const uint64_t sluice_rss_tcp = RTE_ETH_RSS_TCP;
const uint64_t sluice_rss_udp = RTE_ETH_RSS_UDP;
const uint64_t sluice_tx_offload_ipv4_cksum = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
const uint64_t sluice_tx_offload_tcp_cksum = RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
const uint64_t sluice_tx_offload_udp_cksum = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
const uint64_t sluice_rx_offload_ipv4_cksum = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
