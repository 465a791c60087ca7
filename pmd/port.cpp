#include "pmd/port.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <rte_dev.h>

namespace sluice::pmd {

const uint8_t kSymmetricRssKey[52] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
};

static bool is_hex(const std::string& s, size_t from, size_t n) {
    if (from + n > s.size()) return false;
    for (size_t i = from; i < from + n; ++i)
        if (!isxdigit(static_cast<unsigned char>(s[i]))) return false;
    return true;
}

// PCI addresses: DDDD:BB:DD.F or BB:DD.F (the EAL's own forms).
static bool is_pci(const std::string& n) {
    if (n.size() == 12 && is_hex(n, 0, 4) && n[4] == ':' && is_hex(n, 5, 2) && n[7] == ':' &&
        is_hex(n, 8, 2) && n[10] == '.' && n[11] >= '0' && n[11] <= '7')
        return true;
    return n.size() == 7 && is_hex(n, 0, 2) && n[2] == ':' && is_hex(n, 3, 2) && n[5] == '.' &&
           n[6] >= '0' && n[6] <= '7';
}

DeviceSpec parse_device(const std::string& s) {
    DeviceSpec d;
    d.devargs = s;
    d.name = s.substr(0, s.find(','));
    if (d.name.empty()) return d;
    if (is_pci(d.name)) {
        d.kind = DeviceSpec::Kind::pci;
        if (d.name.size() == 7) d.name = "0000:" + d.name;
        return d;
    }
    // vdev names are a driver name plus an instance suffix, e.g. net_tap0, net_af_packet1.
    if (d.name.rfind("net_", 0) == 0 && d.name.size() > 4) {
        for (char c : d.name)
            if (!isalnum(static_cast<unsigned char>(c)) && c != '_') return d;
        d.kind = DeviceSpec::Kind::vdev;
        if (d.name.rfind("net_af_packet", 0) == 0 || d.name.rfind("eth_af_packet", 0) == 0) {
            if (s.find("framesz=") == std::string::npos && s.find("blocksz=") == std::string::npos)
                d.devargs += ",framesz=" + std::to_string(kAfPacketFrame) +
                             ",blocksz=" + std::to_string(kAfPacketFrame);
            d.rx_data_room = kAfPacketFrame + RTE_PKTMBUF_HEADROOM;
        }
    }
    return d;
}

bool driver_copies_tx(std::string_view driver, std::string_view devargs) {
    if (driver == "net_memif") {
        // A client with zero-copy=yes puts the mbufs' own buffers on the ring
        // (eth_memif_tx_zc); a server ignores the flag (rte_eth_memif.c: "Zero-copy flag
        // irrelevant to server").
        const bool client = devargs.find("role=client") != std::string_view::npos ||
                            devargs.find("role=slave") != std::string_view::npos;
        return !(client && devargs.find("zero-copy=yes") != std::string_view::npos);
    }
    return driver == "net_tap" || driver == "net_af_packet" || driver == "net_pcap" ||
           driver == "net_vhost";
}

int Port::open(const std::string& devargs, const PortConfig& cfg, rte_mempool* pool) {
    const DeviceSpec spec = parse_device(devargs);
    if (spec.kind == DeviceSpec::Kind::invalid) {
        fprintf(stderr, "sluice: '%s' is neither a PCI address nor vdev devargs (net_*)\n",
                devargs.c_str());
        return -EINVAL;
    }
    uint16_t id = 0;
    if (rte_eth_dev_get_port_by_name(spec.name.c_str(), &id) != 0) {
        // Not probed by the EAL's command line: hot-plug it now.
        const int rc = rte_dev_probe(spec.devargs.c_str());
        if (rc != 0 || rte_eth_dev_get_port_by_name(spec.name.c_str(), &id) != 0) {
            fprintf(stderr, "sluice: cannot open device '%s': %s\n", devargs.c_str(),
                    strerror(rc < 0 ? -rc : ENODEV));
            return rc < 0 ? rc : -ENODEV;
        }
        probed_by_us_ = true;
    }
    devargs_ = devargs;
    return open_id(id, cfg, pool);
}

int Port::open_id(uint16_t port_id, const PortConfig& cfg, rte_mempool* pool) {
    if (!rte_eth_dev_is_valid_port(port_id)) return -ENODEV;
    id_ = port_id;
    open_ = true;
    char name[RTE_ETH_NAME_MAX_LEN];
    if (rte_eth_dev_get_name_by_port(port_id, name) == 0) name_ = name;
    const int rc = configure(cfg, pool);
    if (rc != 0) close();
    return rc;
}

// The MTU the port will carry, given the one wanted (configure's second half).
uint16_t Port::settle_mtu(uint16_t want, const rte_eth_dev_info& info) {
    uint16_t cur = RTE_ETHER_MTU;
    if (rte_eth_dev_get_mtu(id_, &cur) != 0) cur = RTE_ETHER_MTU;
    if (want == cur) return want;
    const int rc = rte_eth_dev_set_mtu(id_, want);
    if (rc == 0) return want;
    // No MTU setting, but frames that long get through (net_ring hands mbufs over whole; a
    // shorter MTU than the port's is always carried).
    if (rc == -ENOTSUP && uint64_t(want) + kL2Overhead <= info.max_rx_pktlen) return want;
    const uint16_t got = std::min(want, cur);
    fprintf(stderr,
            "sluice: port %s: MTU %u not available (%s; the port takes frames up to %u bytes): "
            "using %u\n",
            name_.c_str(), want, strerror(-rc), info.max_rx_pktlen, got);
    return got;
}

int Port::configure(const PortConfig& cfg, rte_mempool* pool) {
    rte_eth_dev_info info{};
    int rc = rte_eth_dev_info_get(id_, &info);
    if (rc != 0) return rc;
    driver_ = info.driver_name;
    tx_copies_ = driver_copies_tx(driver_, devargs_);

    nb_rxq_ = RTE_MAX(uint16_t(1), RTE_MIN(cfg.rx_queues, info.max_rx_queues));
    nb_txq_ = RTE_MAX(uint16_t(1), RTE_MIN(cfg.tx_queues, info.max_tx_queues));

    rte_eth_conf conf{};
    // Checksum offloads: take what the port has; pmd/tx_checksum.hpp and proto/ do the rest.
    const uint64_t rx_want = cfg.hw_offloads
                                 ? (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM |
                                    RTE_ETH_RX_OFFLOAD_TCP_CKSUM)
                                 : 0;
    const uint64_t tx_want = cfg.hw_offloads
                                 ? (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM |
                                    RTE_ETH_TX_OFFLOAD_TCP_CKSUM)
                                 : 0;
    conf.rxmode.offloads = rx_want & info.rx_offload_capa;
    conf.txmode.offloads = (tx_want | RTE_ETH_TX_OFFLOAD_MULTI_SEGS) & info.tx_offload_capa;
    off_ = {};
    off_.rx_ip_cksum = conf.rxmode.offloads & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
    off_.rx_l4_cksum =
        (conf.rxmode.offloads & (RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM)) ==
        (RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM);
    off_.tx_ip_cksum = conf.txmode.offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
    off_.tx_l4_cksum =
        (conf.txmode.offloads & (RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM)) ==
        (RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM);
    if (!off_.tx_l4_cksum)
        conf.txmode.offloads &= ~(RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM);

    // RSS with a symmetric key, hashing fragments on addresses only (so that every fragment
    // of a datagram meets on one core) and whole datagrams on the 4-tuple.
    const uint64_t hf = (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_UDP |
                         RTE_ETH_RSS_NONFRAG_IPV4_TCP) &
                        info.flow_type_rss_offloads;
    if (nb_rxq_ > 1 && hf != 0) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = const_cast<uint8_t*>(kSymmetricRssKey);
        conf.rx_adv_conf.rss_conf.rss_key_len =
            info.hash_key_size ? RTE_MIN(info.hash_key_size, uint8_t(sizeof kSymmetricRssKey)) : 40;
        conf.rx_adv_conf.rss_conf.rss_hf = hf;
        off_.rss = true;
        off_.rss_hf = hf;
    } else if (nb_rxq_ > 1 && !cfg.queues_without_rss) {
        nb_rxq_ = 1;  // no RSS: more queues would only split flows arbitrarily
    }

    // A frame longer than one mbuf of the RX pool needs scattered RX, where the port has it.
    const uint32_t frame = uint32_t(cfg.mtu) + kL2Overhead;
    const uint32_t room = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
    if (frame > room) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER & info.rx_offload_capa;

    rc = rte_eth_dev_configure(id_, nb_rxq_, nb_txq_, &conf);
    if (rc != 0) {
        fprintf(stderr, "sluice: port %s: configure failed: %s\n", name_.c_str(), strerror(-rc));
        return rc;
    }
    mtu_ = settle_mtu(cfg.mtu, info);

    uint16_t nrx = cfg.rx_desc, ntx = cfg.tx_desc;
    rte_eth_dev_adjust_nb_rx_tx_desc(id_, &nrx, &ntx);
    const int socket = rte_eth_dev_socket_id(id_);
    for (uint16_t q = 0; q < nb_rxq_; ++q) {
        rte_eth_rxconf rxc = info.default_rxconf;
        rxc.offloads = conf.rxmode.offloads;
        rc = rte_eth_rx_queue_setup(id_, q, nrx, socket < 0 ? 0 : unsigned(socket), &rxc, pool);
        if (rc != 0) {
            fprintf(stderr, "sluice: port %s: rx queue %u: %s\n", name_.c_str(), q, strerror(-rc));
            return rc;
        }
    }
    for (uint16_t q = 0; q < nb_txq_; ++q) {
        rte_eth_txconf txc = info.default_txconf;
        txc.offloads = conf.txmode.offloads;
        rc = rte_eth_tx_queue_setup(id_, q, ntx, socket < 0 ? 0 : unsigned(socket), &txc);
        if (rc != 0) {
            fprintf(stderr, "sluice: port %s: tx queue %u: %s\n", name_.c_str(), q, strerror(-rc));
            return rc;
        }
    }
    rc = rte_eth_dev_start(id_);
    if (rc != 0) {
        fprintf(stderr, "sluice: port %s: start failed: %s\n", name_.c_str(), strerror(-rc));
        return rc;
    }
    started_ = true;
    rte_eth_macaddr_get(id_, &mac_);
    station_mac_ = mac_;
    if (strcmp(driver_, "net_tap") == 0) {
        station_mac_.addr_bytes[0] |= 0x02;  // locally administered
        station_mac_.addr_bytes[5] ^= 0x01;
    }

    // Compile-time dispatch of the software fallback, chosen once per port.
    const bool l4_bad_on_chains = strcmp(driver_, "net_tap") == 0;
    if (cfg.trusted_link && cfg.hw_offloads)
        finish_ = &mark_verified;
    else if (off_.tx_l4_cksum && l4_bad_on_chains)
        finish_ = off_.tx_ip_cksum ? &finish_tx_checksums_chains_sw<true>
                                   : &finish_tx_checksums_chains_sw<false>;
    else if (off_.tx_ip_cksum && off_.tx_l4_cksum)
        finish_ = &finish_tx_checksums<true, true>;
    else if (off_.tx_ip_cksum)
        finish_ = &finish_tx_checksums<true, false>;
    else if (off_.tx_l4_cksum)
        finish_ = &finish_tx_checksums<false, true>;
    else
        finish_ = &finish_tx_checksums<false, false>;
    return 0;
}

int Port::accept_mac(const rte_ether_addr& mac) {
    if (rte_is_same_ether_addr(&mac, &mac_)) return 0;
    int rc = rte_eth_dev_mac_addr_add(id_, const_cast<rte_ether_addr*>(&mac), 0);
    if (rc == 0) return 0;
    // No filter table (or no room): take everything; the stack filters in software anyway.
    rc = rte_eth_promiscuous_enable(id_);
    return rc == -ENOTSUP ? 0 : rc;  // virtual ports without filters deliver everything
}

LinkInfo Port::link() const {
    LinkInfo li;
    rte_eth_link l{};
    if (open_ && rte_eth_link_get_nowait(id_, &l) == 0) {
        li.up = l.link_status == RTE_ETH_LINK_UP;
        li.speed_mbps = l.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : l.link_speed;
        li.full_duplex = l.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
    }
    return li;
}

void Port::close() {
    if (!open_) return;
    if (started_) rte_eth_dev_stop(id_);
    started_ = false;
    rte_eth_dev_close(id_);
    if (probed_by_us_) rte_eal_hotplug_remove("vdev", name_.c_str());
    probed_by_us_ = false;
    open_ = false;
}

}  // namespace sluice::pmd
