// A DPDK ethdev port, opened from one string and owned by one object (RAII: stopped and
// closed in the destructor). Everything that touches rte_ethdev lives in pmd/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include "pmd/tx_checksum.hpp"

namespace sluice::pmd {

// The device string given on the command line: a PCI address or vdev devargs.
struct DeviceSpec {
    enum class Kind { pci, vdev, invalid };
    Kind kind = Kind::invalid;
    std::string devargs;  // as given, plus what the driver needs (see parse_device)
    std::string name;     // the ethdev name to look up (devargs up to the first comma)
    uint16_t rx_data_room = RTE_MBUF_DEFAULT_BUF_SIZE;  // mbuf data room the RX pool needs
};
// net_af_packet joins a PACKET_FANOUT group with PACKET_FANOUT_FLAG_DEFRAG: the kernel
// reassembles IP fragments before they reach the port, so one frame can be as large as a whole
// datagram. parse_device gives such ports large ring frames (framesz/blocksz, unless set) and
// asks for mbufs large enough to hold them; the stack then sees the datagram unfragmented.
DeviceSpec parse_device(const std::string& s);
inline constexpr uint16_t kAfPacketFrame = 16384;
// What a frame carries besides its IP packet, as DPDK counts it against max_rx_pktlen.
inline constexpr uint32_t kL2Overhead = RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;

// Checksum and RSS capabilities as negotiated with the port.
struct Offloads {
    bool rx_ip_cksum = false;
    bool rx_l4_cksum = false;  // UDP and TCP both
    bool tx_ip_cksum = false;
    bool tx_l4_cksum = false;  // UDP and TCP both
    bool rss = false;
    uint64_t rss_hf = 0;
};

struct PortConfig {
    uint16_t rx_queues = 1;  // wanted; the port may give fewer
    uint16_t tx_queues = 1;
    uint16_t rx_desc = 1024;
    uint16_t tx_desc = 1024;
    uint16_t mtu = 1500;      // wanted; Port::mtu() says what the port carries
    bool hw_offloads = true;  // false: do everything in software (testing the fallback)
    // Without RSS a port's extra RX queues would split flows arbitrarily, so by default it
    // gets one (the engine's software-RSS stage spreads flows instead). Ports whose queues
    // carry distinct traffic by construction (the in-memory wire) keep them all.
    bool queues_without_rss = false;
    // A link that cannot damage a frame (the in-memory wire): checksums are not computed on
    // TX, and what asked for them arrives marked verified (RX ..._CKSUM_GOOD), as on Linux's
    // loopback and veth. Frames the fault injector damages lose both (pmd/impair.cpp).
    bool trusted_link = false;
};

// Whether a driver copies each transmitted frame out of its mbufs into buffers of its own
// (its TX takes no reference to them): net_memif (into the shared-memory ring, except a
// client's zero-copy mode), net_tap (writev into the kernel), net_af_packet (into the
// PACKET_MMAP ring), net_pcap, net_vhost (into the guest's buffers). A NIC gathers chained
// mbufs by DMA; net_ring (the in-memory wire) hands the mbufs themselves over.
bool driver_copies_tx(std::string_view driver, std::string_view devargs);

// 40-byte Toeplitz key made of a repeated 16-bit pattern: the hash of (a, b) equals that of
// (b, a), so both directions of a flow land on the same queue ("symmetric RSS",
// Woo & Park, 2012). 0x6d5a is the pattern commonly used for this.
extern const uint8_t kSymmetricRssKey[52];

struct LinkInfo {
    bool up = false;
    uint32_t speed_mbps = 0;
    bool full_duplex = false;
};

class Port {
  public:
    Port() = default;
    ~Port() { close(); }
    Port(const Port&) = delete;
    Port& operator=(const Port&) = delete;

    // Opens `devargs` (probing it if the EAL did not), configures queues and offloads against
    // rte_eth_dev_info, sets up the queues on `pool` and starts it. Returns 0 or a negative
    // errno, with a message on stderr.
    int open(const std::string& devargs, const PortConfig& cfg, rte_mempool* pool);
    // The same for a port that already exists (e.g. one end of the in-memory wire).
    int open_id(uint16_t port_id, const PortConfig& cfg, rte_mempool* pool);
    void close();

    bool is_open() const { return open_; }
    uint16_t id() const { return id_; }
    uint16_t rx_queues() const { return nb_rxq_; }
    uint16_t tx_queues() const { return nb_txq_; }
    const Offloads& offloads() const { return off_; }
    const rte_ether_addr& mac() const { return mac_; }
    // The address the stack answers to. The port's own MAC, except on net_tap, whose kernel
    // interface carries the same MAC as the port: there the stack takes a distinct, locally
    // administered one (TAP delivers every frame the kernel sends, whatever its destination),
    // so the kernel sees a peer with an address of its own.
    const rte_ether_addr& station_mac() const { return station_mac_; }
    const char* driver() const { return driver_; }
    // The IP MTU the port carries: PortConfig::mtu where the port took it (rte_eth_dev_set_mtu)
    // or carries frames that long without an MTU setting (net_ring: its max_rx_pktlen); else
    // the port's own, said on stderr. The stack must not send more (a longer frame is dropped
    // by the port or the peer, silently).
    uint16_t mtu() const { return mtu_; }
    // The driver copies frames on TX (driver_copies_tx): chaining buys nothing there.
    bool tx_copies() const { return tx_copies_; }
    const std::string& name() const { return name_; }
    LinkInfo link() const;

    uint16_t rx(uint16_t q, rte_mbuf** pkts, uint16_t n) {
        return rte_eth_rx_burst(id_, q, pkts, n);
    }

    // Finishes checksums the port cannot do (see tx_checksum.hpp); returns how many it
    // computed in software.
    uint32_t prepare_tx(rte_mbuf** pkts, uint16_t n) { return finish_(pkts, n); }
    // Transmits prepared packets. Returns how many the port took; the caller frees and counts
    // the rest.
    uint16_t send(uint16_t q, rte_mbuf** pkts, uint16_t n) {
        return rte_eth_tx_burst(id_, q, pkts, n);
    }
    // Both.
    uint16_t tx(uint16_t q, rte_mbuf** pkts, uint16_t n, uint64_t* sw_cksums) {
        *sw_cksums += prepare_tx(pkts, n);
        return send(q, pkts, n);
    }
    // Makes the port deliver frames sent to `mac` (a MAC filter entry, or promiscuous mode
    // where the port has no filter to add to). Returns 0 or a negative errno.
    int accept_mac(const rte_ether_addr& mac);

  private:
    int configure(const PortConfig& cfg, rte_mempool* pool);
    uint16_t settle_mtu(uint16_t want, const rte_eth_dev_info& info);

    bool open_ = false;
    bool started_ = false;
    bool probed_by_us_ = false;
    uint16_t id_ = 0;
    uint16_t nb_rxq_ = 0;
    uint16_t nb_txq_ = 0;
    uint16_t mtu_ = RTE_ETHER_MTU;
    Offloads off_{};
    rte_ether_addr mac_{};
    rte_ether_addr station_mac_{};
    const char* driver_ = "";
    bool tx_copies_ = false;
    std::string name_;
    std::string devargs_;
    uint32_t (*finish_)(rte_mbuf**, uint16_t) = &finish_tx_checksums<false, false>;
};

}  // namespace sluice::pmd
