// sluice-broker: a Redis-compatible publish/subscribe broker on Sluice's TCP (apps/broker/
// DESIGN.md). One Broker per worker core, built only on proto/tcp.hpp's API: the core's
// clients, its share of the subscriptions (Topics) and its end of the inter-core bus.
//
// Per client: received chains go into an InBuf (zero copy); requests are parsed and executed
// in order; everything the client is owed (replies and messages) goes through its OutBuf, in
// order, and is handed to TCP by reference at the end of each pass. A PUBLISH's payload is
// cloned (indirect mbufs) from the publisher's InBuf once, and each subscriber's frame is a
// small header mbuf chained to indirect mbufs over that clone.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <rte_mbuf.h>

#include "apps/broker/bus.hpp"
#include "apps/broker/resp.hpp"
#include "apps/broker/topics.hpp"
#include "engine/runtime.hpp"
#include "proto/tcp.hpp"

namespace sluice::apps::broker {

// Broker counters, per core: INFO, the exit summary and telemetry (/sluice/broker, summed
// over the workers). Written by their core only; read with plain 64-bit loads.
#define SLUICE_BROKER_COUNTERS(X)                                                 \
    X(connections, "client connections accepted")                                 \
    X(commands, "commands executed")                                              \
    X(published, "PUBLISH and SPUBLISH executed")                                 \
    X(delivered, "message frames queued to subscribers")                          \
    X(batched, "messages delivered in a run of PUBLISHes (Broker::Batch)")        \
    X(unparsed, "PUBLISHes that joined a run unparsed (publish_same)")            \
    X(remote_out, "published messages handed to other cores")                     \
    X(remote_in, "published messages taken from other cores")                     \
    X(protocol_errors, "requests that broke RESP (answered, connection closed)")  \
    X(unknown_commands, "unknown commands (answered with an error)")              \
    X(slow_disconnects, "pub/sub clients cut off at the output limit")            \
    X(paused, "requests that waited for mbufs or ring room")                      \
    X(output_waits, "times a client's output waited for TCP send-queue pieces")   \
    X(no_mbuf_disconnects, "subscribers cut off: no mbuf for a message or reply") \
    X(bus_no_mbuf, "bus messages that could not be built at once (retried)")      \
    X(oversized, "connections closed: a request larger than the input buffer")

struct BrokerCounters {
#define SLUICE_X(name, help) uint64_t name = 0;
    SLUICE_BROKER_COUNTERS(SLUICE_X)
#undef SLUICE_X
};

// On cache lines of its own (a heap neighbour written by another core would share its first
// line, which check_limits reads for every delivery).
class alignas(RTE_CACHE_LINE_SIZE) Broker {
  public:
    struct Config {
        uint16_t listen_port = 6379;
        // Redis's client-output-buffer-limit for pub/sub clients: "pubsub 32mb 8mb 60".
        uint64_t out_hard = 32ull << 20;
        uint64_t out_soft = 8ull << 20;
        uint32_t out_soft_s = 60;
        RequestParser::Limits limits;
        // Payloads shorter than this are copied into each subscriber's frame instead of
        // referenced (0: never). Below ~128 bytes a reference costs more than the copy: an
        // indirect mbuf is 128 bytes of metadata and an atomic on the shared buffer, and TCP
        // copies such small pieces into its segments anyway (Tcp::kMinGatherPiece). Copied
        // frames are packed into MSS-sized mbufs that TCP sends by reference.
        uint32_t copy_below = 128;
        proto::TcpConfig tcp;
        std::shared_ptr<Bus> bus;  // shared by the process's workers
    };

    Broker(const Config& c, unsigned worker);
    ~Broker();
    Broker(const Broker&) = delete;
    Broker& operator=(const Broker&) = delete;

    // UDP: none served.
    bool udp_port_open(uint16_t) const { return false; }
    void on_udp(proto::Stack&, proto::UdpDatagram& d) { rte_pktmbuf_free(d.m); }

    void tcp_config(proto::TcpConfig& t);
    void start(proto::Tcp& tcp, uint64_t now);
    void poll(proto::Tcp& tcp, uint64_t now);
    int exit_code() const { return rc_; }

    void on_tcp_connected(proto::Tcp& tcp, proto::TcpConn* c);
    void on_tcp_data(proto::Tcp& tcp, proto::TcpConn* c, rte_mbuf* m);
    void on_tcp_peer_fin(proto::Tcp& tcp, proto::TcpConn* c);
    void on_tcp_writable(proto::Tcp& tcp, proto::TcpConn* c);
    void on_tcp_closed(proto::Tcp& tcp, proto::TcpConn* c, proto::TcpCloseReason r);

    const BrokerCounters& counters() const { return ctr_; }
    void print_summary() const;

  private:
    struct Client {
        explicit Client(const RequestParser::Limits& l) : parser(l) {}
        proto::TcpConn* conn = nullptr;
        SubId sid = 0;
        uint32_t gen = 0;  // bumped when the slot is reused
        uint64_t id = 0;   // CLIENT ID
        InBuf in;
        RequestParser parser;
        Request req;
        OutBuf out;
        int resp = 2;
        std::unordered_set<std::string> subs[3];  // by Kind: channels, patterns, shard channels
        std::string name;
        enum class Reply : uint8_t { on, off, skip_next, skip_this } reply = Reply::on;
        bool live = false;
        bool closing = false;       // QUIT: close once the reply is out
        bool dead = false;          // disconnected by us (limit, protocol error): ignore the rest
        bool dirty = false;         // on the flush list
        bool paused = false;        // a request waits for resources (retried by poll)
        uint32_t pending_acks = 0;  // directory updates other cores have not acknowledged
        uint32_t credited = 0;      // unparsed bytes already given back to the receive window
        uint64_t soft_since = 0;    // TSC when the output went above the soft limit, or 0

        uint32_t n_subs() const { return uint32_t(subs[0].size() + subs[1].size()); }
        bool subscribed() const { return n_subs() + subs[2].size() != 0; }
    };

    // Requests.
    void process(proto::Tcp& tcp, Client& cl);
    // Executes cl.req. false: it could not run yet (resources): the request stays unparsed.
    bool execute(proto::Tcp& tcp, Client& cl);
    bool cmd_subscribe(Client& cl, Kind k, bool sub);
    bool cmd_publish(proto::Tcp& tcp, Client& cl, Kind k);
    void cmd_pubsub(Client& cl);
    void cmd_hello(Client& cl);
    void cmd_client(Client& cl);
    void cmd_config(Client& cl);
    void cmd_command(Client& cl);
    void cmd_info(Client& cl);
    void reset_client(Client& cl);

    // Output.
    bool replying(Client& cl) const { return cl.reply == Client::Reply::on; }
    void reply_error(Client& cl, std::string_view msg);  // counts, honours CLIENT REPLY
    void arity_error(Client& cl, std::string_view cmd);
    void mark_dirty(Client& cl);
    void flush_clients(proto::Tcp& tcp);
    // One message on its way to this core's subscribers, its frames formatted once per variant
    // (broker.cpp).
    struct Fanout;
    // Appends the message's frame (a pmessage one for `pattern`) to a subscriber. false: no
    // mbufs.
    bool deliver_frame(Client& sub, Fanout& f, const std::string* pattern);
    // Whether a frame of `bytes` may go straight into the client's TCP send queue: nothing
    // of its output waits ahead of it.
    bool direct(const Client& cl, uint32_t bytes) const;
    // A run of small PUBLISHes to one channel, delivered together (broker.cpp).
    struct Batch;
    // Takes a PUBLISH of `msg` on (k, channel), which `local` subscribers here get, into the
    // run (ending the run before it when it is for another channel or full); false: it cannot join
    // one (too long), the caller delivers it, after flush_batch().
    // `in_run`: the run has messages and they are for (k, channel).
    bool batch_add(Kind k, std::string_view channel, const Arg& msg, uint32_t local, bool in_run);
    // Delivers the run to this core's subscribers, if there is one.
    void flush_batch();
    // The next request of `cl`, if it is the run's last PUBLISH again but for its payload's
    // bytes, joined to the run without parsing it; false: nothing done (parse it).
    bool publish_same(Client& cl, uint32_t& done);
    // Fan-out on this core; returns deliveries made.
    uint32_t deliver_local(Kind k, std::string_view channel, rte_mbuf* payload,
                           uint32_t payload_len, int from);
    uint32_t deliver_local(Fanout& f);
    // A PUBLISH's payload and its CRLF as an mbuf chain (by reference where it can); nullptr
    // when out of mbufs.
    rte_mbuf* payload_chain(const InBuf& in, const Arg& msg);
    void check_limits(Client& cl, uint64_t now);
    // The output limits in force: the bus's (shared by the cores) once set, else the Config's.
    uint64_t lim_hard() const {
        return cfg_.bus ? cfg_.bus->out_hard.load(std::memory_order_relaxed) : cfg_.out_hard;
    }
    uint64_t lim_soft() const {
        return cfg_.bus ? cfg_.bus->out_soft.load(std::memory_order_relaxed) : cfg_.out_soft;
    }
    uint32_t lim_soft_s() const {
        return cfg_.bus ? cfg_.bus->out_soft_s.load(std::memory_order_relaxed) : cfg_.out_soft_s;
    }
    // Disconnects a client at the next flush (never from inside a delivery loop).
    void kill_later(Client& cl, const char* why);

    // The bus.
    bool bus_attach();
    void bus_send(unsigned to, rte_mbuf* m);
    rte_mbuf* bus_msg(BusType t, Kind k, int delta, std::string_view name, uint32_t token,
                      uint32_t gen, uint32_t seq = 0);
    // Announces a subscription change to every other core; the client's output is held until
    // each has acknowledged (pending_acks). false: a ring or the pool is full (nothing sent).
    bool announce(Client& cl, Kind k, std::string_view name, int delta, bool want_ack);
    bool bus_room(uint32_t msgs) const;
    void bus_poll(proto::Tcp& tcp);

    Client* client(proto::TcpConn* c) { return static_cast<Client*>(c->user); }
    Client* new_client();
    void detach(Client& cl);
    void free_client(Client* cl);

    Config cfg_;
    unsigned worker_;
    unsigned n_cores_ = 1;
    int rc_ = 0;
    uint64_t hz_ = 0, now_ = 0;
    rte_mempool* small_ = nullptr;  // bus messages (TCP's small pool)
    rte_mempool* pool_ = nullptr;   // long bus messages, copied payloads
    // The fan-out's own pools, per core: clones (indirect mbufs, no data room: 128-byte
    // objects) and output (replies and frame headers: 256 bytes of room). Small objects keep
    // the mbufs in flight to many subscribers within the caches.
    rte_mempool* clones_ = nullptr;
    rte_mempool* out_ = nullptr;
    rte_mempool* pack_ = nullptr;  // copied frames packed MSS-sized (OutBuf::put_frame)
    Topics topics_;
    std::unique_ptr<Batch> batch_;  // the run of PUBLISHes being gathered (flush_batch)
    std::vector<std::unique_ptr<Client>> clients_;  // by SubId
    std::vector<SubId> free_;
    std::vector<SubId> dirty_;
    std::vector<SubId> paused_;
    std::vector<SubId> blocked_;  // output TCP refused (no send-queue piece): retried by poll
    std::vector<SubId> retry_;    // poll's scratch copy of paused_ or blocked_, empty otherwise
    proto::Tcp* tcp_ = nullptr;   // this worker's (start)
    std::vector<std::pair<SubId, uint32_t>> kills_;    // (slot, generation)
    std::vector<rte_mbuf*> overflow_[Bus::kMaxCores];  // bus messages a full ring refused, per core
    // Bus messages taken off a ring but not handled yet (a publish waiting for mbufs), in order:
    // handled before anything more from that ring.
    std::vector<rte_mbuf*> bus_held_[Bus::kMaxCores];
    // Fan-out mbufs this core may still take before it must look at its pools again
    // (reserve()): what the clone and out pools held at the last look, less a reserve, less
    // what deliveries took since. rte_mempool_avail_count sums every lcore's cache: too
    // costly for each PUBLISH.
    int64_t budget_ = 0;
    int64_t reserve_ = 0;  // kept back from deliveries (start: kPoolReserve or less)
    // Takes `need` fan-out mbufs from the budget (looking at the pools again when it is
    // short); false: the pools are low, the delivery must wait. A need no pool could ever meet
    // goes ahead (and finds out).
    bool reserve(uint32_t need);
    // The pools are short: the client holding the most (holding()) is disconnected as a slow
    // consumer if it holds a sizeable share (kPoolReserve or more), at most one every
    // 100 ms. Subscribers that stopped reading, each under the output limits, would otherwise
    // keep every delivery waiting for good.
    void relieve_pools();
    uint64_t next_relief_ = 0;
    std::vector<BusMsg> owed_acks_;  // acknowledgements not yet built (no mbuf)
    // Subscription changes of this core's clients that some other core has not acknowledged
    // yet (announce with an ack), oldest first. A message another core published before it
    // learned of a change was counted (PUBLISH's reply) by the subscriptions as they were: it
    // is delivered by those (seen_state), so that the count and the deliveries agree.
    struct Change {
        uint32_t seq;
        SubId sid;
        uint32_t gen;
        Kind k;
        int8_t delta;
        std::string name;
    };
    std::deque<Change> changes_;
    uint32_t next_seq_ = 1;
    uint32_t acked_[Bus::kMaxCores] = {};  // the last change each core acknowledged
    // Was (s, k, name) subscribed as core `from` knows it (the last change it acknowledged)?
    // -1: no change in flight (the local state is everyone's).
    int seen_state(SubId s, Kind k, std::string_view name, unsigned from) const;
    void prune_changes();
    uint64_t next_id_;
    uint64_t next_limits_check_ = 0;
    BrokerCounters ctr_;
    uint32_t window_ = 0;  // the receive window TCP offers (TcpConfig::rcv_buf)
    // What one client may hold (holding(): a quarter of the fan-out pools), and the send-queue
    // blocks its TCP queue may hold (a quarter of the core's): otherwise, with many messages
    // waiting, the pools could run dry before the byte limits, and other subscribers would wait
    // on one slow reader.
    uint64_t mbuf_cap_ = UINT64_MAX;
    uint32_t block_cap_ = UINT32_MAX;
    // The mbufs a client keeps from their pools: its output buffer's, and those its TCP queue
    // holds a reference to (a payload shared with other subscribers counts for each).
    static uint64_t holding(const Client& cl);
};

}  // namespace sluice::apps::broker
