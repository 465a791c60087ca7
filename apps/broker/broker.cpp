#include "apps/broker/broker.hpp"

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>
#include <rte_telemetry.h>

#include "apps/broker/glob.hpp"

namespace sluice::apps::broker {

using proto::Tcp;
using proto::TcpCloseReason;
using proto::TcpConn;

namespace {

constexpr uint32_t kNoToken = UINT32_MAX;
constexpr unsigned kBusBurst = 32;
// Fan-out mbufs (and TCP send-queue pieces) left for replies and everything else: a delivery
// that would dig into them waits (Broker::reserve). At most an eighth of the smallest of them
// (Broker::start): a fixed count larger than a small pool would stall deliveries for good.
constexpr uint32_t kPoolReserve = 2048;
constexpr unsigned kClonePool = 131071, kOutPool = 65535;  // per worker
constexpr unsigned kPackPool = 8191, kPackRoom = 2048;     // per worker
// What one connection's unparsed input may hold: 16384 segments, which past
// InBuf::kCoalesceAbove are ~64 KB buffers (InBuf::set_coalesce_pool), so about 1 GB (Redis's
// client query buffer limit), and at most 6144 of the port's receive mbufs (held as they came
// when there is no memory for big buffers: about 8 MB). Past either the connection is closed.
constexpr uint32_t kMaxInputSegs = 16384, kMaxInputRxSegs = 6144;

enum class Cmd : uint8_t {
    unknown,
    ping,
    echo,
    quit,
    reset,
    hello,
    select,
    flushall,
    flushdb,
    function,
    config,
    client,
    command,
    info,
    subscribe,
    unsubscribe,
    psubscribe,
    punsubscribe,
    ssubscribe,
    sunsubscribe,
    publish,
    spublish,
    pubsub,
};

struct CmdInfo {
    std::string_view name;
    Cmd cmd;
    int arity;          // Redis's: n exactly, -n at least n (the name included)
    bool pubsub_ok;     // allowed in RESP2 subscribed state (Redis 7.0 processCommand)
    const char* flags;  // COMMAND's flags, space-separated
};

constexpr CmdInfo kCommands[] = {
    {"ping", Cmd::ping, -1, true, "fast"},
    {"echo", Cmd::echo, 2, false, "fast"},
    {"quit", Cmd::quit, -1, true, "allow_busy fast no_auth"},
    {"reset", Cmd::reset, 1, true, "fast no_auth allow_busy"},
    {"hello", Cmd::hello, -1, false, "fast no_auth allow_busy"},
    {"select", Cmd::select, 2, false, "loading stale fast"},
    {"flushall", Cmd::flushall, -1, false, "write"},
    {"flushdb", Cmd::flushdb, -1, false, "write"},
    {"function", Cmd::function, -2, false, ""},
    {"config", Cmd::config, -2, false, ""},
    {"client", Cmd::client, -2, false, ""},
    {"command", Cmd::command, -1, false, "loading stale"},
    {"info", Cmd::info, -1, false, "loading stale"},
    {"subscribe", Cmd::subscribe, -2, true, "pubsub noscript loading stale"},
    {"unsubscribe", Cmd::unsubscribe, -1, true, "pubsub noscript loading stale"},
    {"psubscribe", Cmd::psubscribe, -2, true, "pubsub noscript loading stale"},
    {"punsubscribe", Cmd::punsubscribe, -1, true, "pubsub noscript loading stale"},
    {"ssubscribe", Cmd::ssubscribe, -2, true, "pubsub noscript loading stale"},
    {"sunsubscribe", Cmd::sunsubscribe, -1, true, "pubsub noscript loading stale"},
    {"publish", Cmd::publish, 3, false, "pubsub loading stale fast may_replicate"},
    {"spublish", Cmd::spublish, 3, false, "pubsub loading stale fast may_replicate"},
    {"pubsub", Cmd::pubsub, -2, false, ""},
};

// The subcommands of container commands, as Redis 7.0 knows them (for its error texts).
std::string_view subcommands(Cmd c) {
    switch (c) {
        case Cmd::client:
            return "caching getname getredir id info kill list no-evict pause reply setname "
                   "tracking trackinginfo unblock unpause help";
        case Cmd::config:
            return "get set resetstat rewrite help";
        case Cmd::pubsub:
            return "channels numpat numsub shardchannels shardnumsub help";
        case Cmd::function:
            return "delete dump flush kill list load restore stats help";
        case Cmd::command:
            return "count docs getkeys getkeysandflags info list help";
        default:
            return {};
    }
}

bool has_word(std::string_view words, std::string_view w) {
    while (!words.empty()) {
        const size_t sp = words.find(' ');
        if (words.substr(0, sp) == w) return true;
        if (sp == std::string_view::npos) break;
        words.remove_prefix(sp + 1);
    }
    return false;
}

// Command names by a hash of their length and first and last letters (open addressing): no
// loop over the name to find its slot, every request. All the names are lowercase letters, so a
// byte of the request matches one case-insensitively exactly when (byte | 0x20) equals it: OR-ing
// 0x20 turns 'A'-'Z' into 'a'-'z' and no other byte into a lowercase letter.
constexpr uint32_t kCmdSlots = 64;  // a power of two, above 2 x the commands
constexpr uint32_t name_slot(size_t len, char first, char last) {
    return (uint32_t(len) * 7u + (uint8_t(first) | 0x20u) * 3u + (uint8_t(last) | 0x20u)) &
           (kCmdSlots - 1);
}

struct CmdTable {
    int8_t slot[kCmdSlots];
    bool letters = true;  // every name is lowercase letters (checked below)
    constexpr CmdTable() : slot{} {
        for (int8_t& x : slot) x = -1;
        for (size_t i = 0; i < std::size(kCommands); ++i) {
            const std::string_view n = kCommands[i].name;
            for (char ch : n) letters = letters && ch >= 'a' && ch <= 'z';
            uint32_t j = name_slot(n.size(), n.front(), n.back());
            while (slot[j] >= 0) j = (j + 1) & (kCmdSlots - 1);
            slot[j] = int8_t(i);
        }
    }
};
constexpr CmdTable kCmdTable;
static_assert(kCmdTable.letters, "find_command's case folding needs lowercase-letter names");
static_assert(std::size(kCommands) * 2 < kCmdSlots);

// The command named `name`, in any case (Redis: strcasecmp), or nullptr.
const CmdInfo* find_command(std::string_view name) {
    if (name.empty() || name.size() > 16) return nullptr;
    for (uint32_t j = name_slot(name.size(), name.front(), name.back()); kCmdTable.slot[j] >= 0;
         j = (j + 1) & (kCmdSlots - 1)) {
        const CmdInfo& c = kCommands[size_t(kCmdTable.slot[j])];
        if (c.name.size() != name.size()) continue;
        size_t i = 0;
        while (i < name.size() && (uint8_t(name[i]) | 0x20) == uint8_t(c.name[i])) ++i;
        if (i == name.size()) return &c;
    }
    return nullptr;
}

bool arity_ok(int arity, size_t argc) {
    return arity >= 0 ? argc == size_t(arity) : argc >= size_t(-arity);
}

std::string_view sv(const Arg& a) {
    return {a.p, a.len};
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (tolower(uint8_t(a[i])) != tolower(uint8_t(b[i]))) return false;
    return true;
}

// Redis's string2ll: optional '-', digits, no leading zeros (but "0"), fits in int64.
bool to_int64(std::string_view s, int64_t& out) {
    if (s.empty() || s.size() > 20) return false;
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        if (++i == s.size()) return false;
    }
    if (s[i] == '0' && s.size() > i + 1) return false;
    uint64_t v = 0;
    for (; i < s.size(); ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        const uint64_t d = uint64_t(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > uint64_t(INT64_MAX) + 1) return false;
        out = int64_t(0 - v);
    } else {
        if (v > uint64_t(INT64_MAX)) return false;
        out = int64_t(v);
    }
    return true;
}

// A memory size as CONFIG SET takes it: digits with an optional k/kb/m/mb/g/gb suffix.
bool to_memory(std::string_view s, uint64_t& out) {
    uint64_t mul = 1;
    auto ends = [&](std::string_view suf) {
        return s.size() > suf.size() && iequals(s.substr(s.size() - suf.size()), suf);
    };
    if (ends("kb"))
        mul = 1024, s.remove_suffix(2);
    else if (ends("mb"))
        mul = 1024 * 1024, s.remove_suffix(2);
    else if (ends("gb"))
        mul = 1024ull * 1024 * 1024, s.remove_suffix(2);
    else if (ends("k"))
        mul = 1000, s.remove_suffix(1);
    else if (ends("m"))
        mul = 1000 * 1000, s.remove_suffix(1);
    else if (ends("g"))
        mul = 1000ull * 1000 * 1000, s.remove_suffix(1);
    int64_t v;
    if (!to_int64(s, v) || v < 0) return false;
    out = uint64_t(v) * mul;
    return true;
}

const char* kind_word(Kind k, bool sub) {
    switch (k) {
        case Kind::channel:
            return sub ? "subscribe" : "unsubscribe";
        case Kind::pattern:
            return sub ? "psubscribe" : "punsubscribe";
        case Kind::shard:
            return sub ? "ssubscribe" : "sunsubscribe";
    }
    return "";
}

// The mbufs a PUBLISH of `len` bytes to `targets` subscribers and cores may take, at most: a
// header each, and a payload by reference spans a segment per ~1 KiB or more received.
uint32_t publish_need(uint32_t targets, uint32_t len) {
    return targets * (2 + len / 1024);
}

// The kind word of a message frame: "message" (PUBLISH) or "smessage" (SPUBLISH).
std::string_view message_kind(Kind k) {
    return k == Kind::shard ? "smessage" : "message";
}

// A message frame's header written with the encoders, piece by piece (for names too long for
// the formatted header): *3 or *4 (RESP3: >), the kind ("pmessage" with a pattern), the pattern,
// the channel, and the payload's length line. false: out of mbufs.
bool put_header_pieces(OutBuf& o, int resp, std::string_view kind, const std::string* pattern,
                       std::string_view channel, uint32_t payload_len) {
    char len[24];
    const int ln = snprintf(len, sizeof len, "$%u\r\n", payload_len);
    return o.push(pattern ? 4 : 3, resp) && o.bulk(pattern ? std::string_view("pmessage") : kind) &&
           (!pattern || o.bulk(*pattern)) && o.bulk(channel) && o.put(len, uint32_t(ln));
}

// /sluice/broker: the workers' counters summed. The bus outlives no broker: the pointer is
// cleared before the brokers go (telemetry commands cannot be unregistered).
std::atomic<Bus*> g_telemetry_bus{nullptr};

int cmd_broker(const char*, const char*, rte_tel_data* d) {
    Bus* b = g_telemetry_bus.load();
    rte_tel_data_start_dict(d);
    BrokerCounters sum;
    if (b) {
        for (unsigned i = 0; i < b->n_cores && i < Bus::kMaxCores; ++i) {
            const auto* c = static_cast<const BrokerCounters*>(b->counters[i]);
            if (!c) continue;
#define SLUICE_X(name, help) sum.name += c->name;
            SLUICE_BROKER_COUNTERS(SLUICE_X)
#undef SLUICE_X
        }
    }
#define SLUICE_X(name, help) rte_tel_data_add_dict_u64(d, #name, sum.name);
    SLUICE_BROKER_COUNTERS(SLUICE_X)
#undef SLUICE_X
    return 0;
}

}  // namespace

Broker::~Broker() {
    g_telemetry_bus.store(nullptr);
    if (cfg_.bus) {
        for (unsigned j = 0; j < n_cores_; ++j) {
            if (j == worker_) continue;
            rte_ring* r = cfg_.bus->ring[j][worker_].exchange(nullptr);
            if (r) {
                void* m;
                while (rte_ring_sc_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
                rte_ring_free(r);
            }
        }
    }
    for (auto& q : overflow_)
        for (rte_mbuf* m : q) rte_pktmbuf_free(m);
    for (auto& q : bus_held_)
        for (rte_mbuf* m : q) rte_pktmbuf_free(m);
    clients_.clear();  // InBuf / OutBuf free what they hold
}

void Broker::print_summary() const {
    printf("  broker worker %u: connections=%" PRIu64 " commands=%" PRIu64 " published=%" PRIu64
           " delivered=%" PRIu64 " batched=%" PRIu64 " unparsed=%" PRIu64 " remote_out=%" PRIu64
           " remote_in=%" PRIu64 " protocol_errors=%" PRIu64 " unknown_commands=%" PRIu64
           " slow_disconnects=%" PRIu64 " no_mbuf_disconnects=%" PRIu64 " paused=%" PRIu64
           " output_waits=%" PRIu64 " oversized=%" PRIu64 " bus_no_mbuf=%" PRIu64 "\n",
           worker_, ctr_.connections, ctr_.commands, ctr_.published, ctr_.delivered, ctr_.batched,
           ctr_.unparsed, ctr_.remote_out, ctr_.remote_in, ctr_.protocol_errors,
           ctr_.unknown_commands, ctr_.slow_disconnects, ctr_.no_mbuf_disconnects, ctr_.paused,
           ctr_.output_waits, ctr_.oversized, ctr_.bus_no_mbuf);
}

void Broker::tcp_config(proto::TcpConfig& t) {
    const uint16_t mss = t.mss;
    t = cfg_.tcp;
    t.mss = std::min(t.mss, mss);
    // The output limits are the broker's (check_limits): TCP takes whatever it is given.
    t.snd_buf = 1u << 30;
    t.nodelay = true;  // Redis sets TCP_NODELAY on its clients
}

void Broker::start(Tcp& tcp, uint64_t now) {
    tcp_ = &tcp;
    hz_ = rte_get_tsc_hz();
    now_ = now;
    small_ = tcp.small_pool();
    {
        char name[RTE_MEMPOOL_NAMESIZE];
        snprintf(name, sizeof name, "brk_clone_%u", worker_);
        clones_ = engine::create_pool(name, kClonePool, int(rte_socket_id()), 0);
        snprintf(name, sizeof name, "brk_out_%u", worker_);
        out_ = engine::create_pool(name, kOutPool, int(rte_socket_id()),
                                   uint16_t(RTE_PKTMBUF_HEADROOM + 256));
        snprintf(name, sizeof name, "brk_pack_%u", worker_);
        pack_ = engine::create_pool(name, kPackPool, int(rte_socket_id()),
                                    uint16_t(RTE_PKTMBUF_HEADROOM + kPackRoom));
        if (pack_) engine::adopt_pool(pack_);  // optional: without it, frames go to out_
        // One client may hold a quarter of the fan-out mbufs (the mbufs of its output buffer
        // and those its TCP queue keeps), and a quarter of the core's send-queue blocks.
        // Frames waiting in its output buffer hold mbufs, not pieces: when other clients'
        // queues have the pieces, a client that reads at full rate waits there, not cut off.
        const uint32_t mbufs =
            std::min(clones_ ? clones_->size : kClonePool, out_ ? out_->size : kOutPool);
        const uint32_t pieces = tcp.sq_free_pieces();
        mbuf_cap_ = mbufs / 4;
        block_cap_ = pieces / proto::TcpSqBlock::kPieces / 4;
        reserve_ = std::min({kPoolReserve, mbufs / 8, pieces / 8});
        if (clones_) engine::adopt_pool(clones_);
        if (out_) engine::adopt_pool(out_);
        if (!clones_ || !out_) {
            fprintf(stderr, "sluice-broker: worker %u: no memory for its mbuf pools\n", worker_);
            rc_ = 1;
            if (!clones_) clones_ = small_;
            if (!out_) out_ = small_;
        }
    }
    window_ = tcp.config().rcv_buf;
    pool_ = tcp.stack().pool();
    topics_ = Topics(worker_, 1);
    if (!bus_attach()) {
        fprintf(stderr, "sluice-broker: worker %u: the inter-core bus did not come up\n", worker_);
        rc_ = 1;
    }
    topics_ = Topics(worker_, n_cores_);
    if (cfg_.bus) {
        cfg_.bus->counters[worker_] = &ctr_;
        if (worker_ == 0) {
            if (cfg_.bus->n_cores < n_cores_) cfg_.bus->n_cores = n_cores_;
            static std::atomic<bool> registered{false};
            if (!registered.exchange(true))
                rte_telemetry_register_cmd("/sluice/broker", cmd_broker,
                                           "Broker counters summed over the workers");
            g_telemetry_bus.store(cfg_.bus.get());
        }
    }
    const int rc = tcp.listen(cfg_.listen_port);
    if (rc != 0 && worker_ == 0) {
        fprintf(stderr, "sluice-broker: cannot listen on %u: %s\n", cfg_.listen_port,
                strerror(-rc));
        rc_ = 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Clients.

Broker::Client* Broker::new_client() {
    SubId sid;
    if (!free_.empty()) {
        sid = free_.back();
        free_.pop_back();
    } else {
        sid = SubId(clients_.size());
        clients_.push_back(std::make_unique<Client>(cfg_.limits));
    }
    Client& cl = *clients_[sid];
    const uint32_t gen = cl.gen + 1;
    cl.sid = sid;
    cl.gen = gen;
    cl.id = next_id_++ * Bus::kMaxCores + worker_;
    cl.out.set_pool(out_);
    cl.out.set_pack_pool(pack_);
    cl.in.set_coalesce_pool(small_);
    cl.parser.reset();
    cl.live = true;
    return &cl;
}

void Broker::free_client(Client* cl) {
    cl->in.clear();
    cl->out.clear();
    for (auto& s : cl->subs) s.clear();
    cl->name.clear();
    cl->conn = nullptr;
    cl->resp = 2;
    cl->reply = Client::Reply::on;
    cl->live = cl->closing = cl->dead = cl->paused = false;
    cl->dirty = false;
    cl->pending_acks = 0;
    cl->credited = 0;
    cl->soft_since = 0;
    free_.push_back(cl->sid);
}

void Broker::on_tcp_connected(Tcp& tcp, TcpConn* c) {
    Client* cl = new_client();
    cl->conn = c;
    c->user = cl;
    ctr_.connections++;
    // Unparsed input counts against the receive window: a publisher whose requests wait for
    // mbufs or ring room is slowed by TCP instead of buffered without bound.
    tcp.set_manual_window(c, true);
    tcp.set_nodelay(c, true);
}

void Broker::on_tcp_data(Tcp& tcp, TcpConn* c, rte_mbuf* m) {
    Client* cl = client(c);
    if (!cl || cl->dead || cl->closing) {
        if (cl && c) tcp.consumed(c, m->pkt_len);
        rte_pktmbuf_free(m);
        return;
    }
    cl->in.append(m);
    if (!cl->paused) process(tcp, *cl);
    flush_clients(tcp);
}

// Redis frees a client that closes its side (read returns 0); here what it sent before is
// still answered, then the connection closes.
void Broker::on_tcp_peer_fin(Tcp& tcp, TcpConn* c) {
    Client* cl = client(c);
    if (!cl) return;
    cl->closing = true;
    mark_dirty(*cl);
    flush_clients(tcp);
}

void Broker::on_tcp_writable(Tcp&, TcpConn*) {}

void Broker::on_tcp_closed(Tcp&, TcpConn* c, TcpCloseReason) {
    Client* cl = client(c);
    if (cl) detach(*cl);
}

// The client goes: its subscriptions (announced to the other cores), its buffers, its slot.
// The connection, if still open, no longer points at it.
void Broker::detach(Client& cl) {
    if (!cl.live) return;
    for (unsigned k = 0; k < 3; ++k) {
        for (const std::string& name : cl.subs[k]) {
            topics_.unsubscribe(Kind(k), name, cl.sid);
            announce(cl, Kind(k), name, -1, false);
        }
    }
    if (cl.conn) cl.conn->user = nullptr;
    free_client(&cl);
}

// ---------------------------------------------------------------------------------------------
// Requests.

void Broker::process(Tcp& tcp, Client& cl) {
    uint32_t done = 0;  // bytes of executed requests not credited to the window yet
    while (!cl.dead && !cl.closing && cl.in.size()) {
        if (publish_same(cl, done)) continue;
        std::string_view err;
        const Parse r = cl.parser.parse(cl.in, cl.req, err);
        if (r == Parse::need_more) {
            // A request longer than the receive window would never complete if its bytes
            // kept the window shut: past half the window they are credited back early. What
            // one connection may hold is bounded by the mbufs: past kMaxInputSegs it is closed.
            if (cl.in.segments() > kMaxInputSegs || cl.in.received_segments() > kMaxInputRxSegs) {
                ctr_.oversized++;
                kill_later(cl, "request larger than the input buffer");
                break;
            }
            const uint32_t uncredited = cl.in.size() - cl.credited;
            if (uncredited >= window_ / 2) {
                tcp.consumed(cl.conn, uncredited);
                cl.credited = cl.in.size();
            }
            break;
        }
        if (r == Parse::error) {
            // Redis replies with the error and closes the connection (setProtocolError).
            ctr_.protocol_errors++;
            cl.out.put(err.data(), uint32_t(err.size()));
            const uint32_t n = cl.in.size();
            cl.in.consume(n);
            tcp.consumed(cl.conn, n - cl.credited);
            cl.credited = 0;
            cl.parser.reset();
            cl.closing = true;
            mark_dirty(cl);
            break;
        }
        if (!cl.req.args.empty() && !execute(tcp, cl)) {
            // Waits for mbufs or ring room: retried from poll, the request still unconsumed.
            cl.parser.reset();
            cl.paused = true;
            paused_.push_back(cl.sid);
            ctr_.paused++;
            break;
        }
        const uint32_t total = cl.req.total;
        const uint32_t pre = std::min(total, cl.credited);
        cl.in.consume(total);
        done += total - pre;
        cl.credited -= pre;
    }
    if (done && cl.conn) tcp.consumed(cl.conn, done);  // once for the whole pass
    flush_batch();  // the client's run of PUBLISHes, if any, ends with its input
}

void Broker::reply_error(Client& cl, std::string_view msg) {
    if (replying(cl) && !cl.out.error(msg)) kill_later(cl, "no mbufs for a reply");
    mark_dirty(cl);
}

void Broker::arity_error(Client& cl, std::string_view cmd) {
    std::string e = "ERR wrong number of arguments for '";
    e.append(cmd);
    e += "' command";
    reply_error(cl, e);
}

bool Broker::execute(Tcp& tcp, Client& cl) {
    const std::vector<Arg>& a = cl.req.args;
    ctr_.commands++;
    if (cl.reply == Client::Reply::skip_next) cl.reply = Client::Reply::skip_this;
    const std::string_view name = sv(a[0]);
    const CmdInfo* ci = find_command(name);
    // A run of PUBLISHes ends before anything else executes (Batch).
    if (!ci || (ci->cmd != Cmd::publish && ci->cmd != Cmd::spublish)) flush_batch();
    bool done = true;
    if (!ci) {
        // Redis 7.0 processCommand: "unknown command '%.128s', with args beginning with: "
        // and each argument quoted, while the list is under 128 characters.
        ctr_.unknown_commands++;
        std::string e = "ERR unknown command '";
        e.append(name.substr(0, 128));
        e += "', with args beginning with: ";
        std::string args;
        for (size_t i = 1; i < a.size() && args.size() < 128; ++i) {
            args += '\'';
            args.append(sv(a[i]).substr(0, 128 - args.size()));
            args += "' ";
        }
        e += args;
        for (char& ch : e)
            if (ch == '\r' || ch == '\n') ch = ' ';
        reply_error(cl, e);
    } else if (!arity_ok(ci->arity, a.size())) {
        arity_error(cl, ci->name);
    } else if (cl.resp == 2 && cl.subscribed() && !ci->pubsub_ok) {
        // Redis names a container command's subcommand too ("client|id"); an unknown
        // subcommand is its own error, which comes first.
        std::string full(ci->name);
        const std::string_view subs = subcommands(ci->cmd);
        bool unknown_sub = false;
        if (!subs.empty()) {
            std::string l(sv(a[1]));
            for (char& ch : l) ch = char(tolower(uint8_t(ch)));
            unknown_sub = !has_word(subs, l);
            full += '|';
            full += l;
        }
        if (unknown_sub) {
            std::string e = "ERR unknown subcommand '";
            e.append(sv(a[1]).substr(0, 128));
            e += "'. Try ";
            for (char ch : ci->name) e += char(toupper(uint8_t(ch)));
            e += " HELP.";
            reply_error(cl, e);
        } else {
            std::string e = "ERR Can't execute '";
            e += full;
            e += "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed "
                 "in this context";
            reply_error(cl, e);
        }
    } else {
        bool ok = true;  // false: out of mbufs for the reply
        const bool rep = replying(cl);
        switch (ci->cmd) {
            case Cmd::ping:
                // Redis 7.0 pingCommand: at most one argument; in RESP2 subscribed state the
                // reply is a two-element array ["pong", argument or ""].
                if (a.size() > 2) {
                    arity_error(cl, "ping");
                } else if (!rep) {
                } else if (cl.resp == 2 && cl.subscribed()) {
                    ok = cl.out.array(2) && cl.out.bulk("pong") &&
                         cl.out.bulk(a.size() > 1 ? sv(a[1]) : std::string_view());
                } else {
                    ok = a.size() > 1 ? cl.out.bulk(sv(a[1])) : cl.out.simple("PONG");
                }
                break;
            case Cmd::echo:
                ok = !rep || cl.out.bulk(sv(a[1]));
                break;
            case Cmd::quit:
                ok = !rep || cl.out.simple("OK");
                cl.closing = true;
                break;
            case Cmd::reset:
                reset_client(cl);
                ok = cl.out.simple("RESET");
                break;
            case Cmd::hello:
                cmd_hello(cl);
                break;
            case Cmd::select: {
                int64_t db;
                if (!to_int64(sv(a[1]), db))
                    reply_error(cl, "ERR value is not an integer or out of range");
                else if (db < 0 || db >= 16)
                    reply_error(cl, "ERR DB index is out of range");
                else
                    ok = !rep || cl.out.simple("OK");
                break;
            }
            case Cmd::flushall:
            case Cmd::flushdb:
                if (a.size() > 2 ||
                    (a.size() == 2 && !iequals(sv(a[1]), "async") && !iequals(sv(a[1]), "sync")))
                    reply_error(cl, "ERR syntax error");
                else
                    ok = !rep || cl.out.simple("OK");
                break;
            case Cmd::function:
                if (iequals(sv(a[1]), "flush")) {
                    if (a.size() > 3 || (a.size() == 3 && !iequals(sv(a[2]), "async") &&
                                         !iequals(sv(a[2]), "sync")))
                        reply_error(cl, "ERR syntax error");
                    else
                        ok = !rep || cl.out.simple("OK");
                } else {
                    std::string e = "ERR unknown subcommand '";
                    e.append(sv(a[1]).substr(0, 128));
                    e += "'. Try FUNCTION HELP.";
                    reply_error(cl, e);
                }
                break;
            case Cmd::config:
                cmd_config(cl);
                break;
            case Cmd::client:
                cmd_client(cl);
                break;
            case Cmd::command:
                cmd_command(cl);
                break;
            case Cmd::info:
                cmd_info(cl);
                break;
            case Cmd::subscribe:
                done = cmd_subscribe(cl, Kind::channel, true);
                break;
            case Cmd::unsubscribe:
                done = cmd_subscribe(cl, Kind::channel, false);
                break;
            case Cmd::psubscribe:
                done = cmd_subscribe(cl, Kind::pattern, true);
                break;
            case Cmd::punsubscribe:
                done = cmd_subscribe(cl, Kind::pattern, false);
                break;
            case Cmd::ssubscribe:
                done = cmd_subscribe(cl, Kind::shard, true);
                break;
            case Cmd::sunsubscribe:
                done = cmd_subscribe(cl, Kind::shard, false);
                break;
            case Cmd::publish:
                done = cmd_publish(tcp, cl, Kind::channel);
                break;
            case Cmd::spublish:
                done = cmd_publish(tcp, cl, Kind::shard);
                break;
            case Cmd::pubsub:
                cmd_pubsub(cl);
                break;
            case Cmd::unknown:
                break;
        }
        if (!ok) kill_later(cl, "no mbufs for a reply");
        // A command that waits (for mbufs or ring room) has queued nothing: no flush for it.
        if (done) mark_dirty(cl);
    }
    if (!done) {
        ctr_.commands--;
        if (cl.reply == Client::Reply::skip_this) cl.reply = Client::Reply::skip_next;
        return false;
    }
    if (cl.reply == Client::Reply::skip_this) cl.reply = Client::Reply::on;
    return true;
}

void Broker::reset_client(Client& cl) {
    // RESET (Redis 7.0 resetCommand -> clearClientConnectionState): leave every channel and
    // pattern without notification, back to RESP2, no name, replies on.
    for (unsigned k = 0; k < 3; ++k) {
        for (const std::string& n : cl.subs[k]) {
            topics_.unsubscribe(Kind(k), n, cl.sid);
            announce(cl, Kind(k), n, -1, true);
        }
        cl.subs[k].clear();
    }
    cl.resp = 2;
    cl.name.clear();
    cl.reply = Client::Reply::on;
}

// SUBSCRIBE / UNSUBSCRIBE and their P and S forms (Redis 7.0 pubsub.c): one confirmation per
// name with the client's subscription count after it (channels + patterns; shard channels
// counted apart); an UNSUBSCRIBE of everything when nothing is subscribed answers one frame
// with a null name.
bool Broker::cmd_subscribe(Client& cl, Kind k, bool sub) {
    const std::vector<Arg>& a = cl.req.args;
    auto& set = cl.subs[unsigned(k)];
    std::vector<std::string> all;  // UNSUBSCRIBE without names: what the client holds
    const size_t n_names = a.size() > 1 ? a.size() - 1 : set.size();
    if (n_cores_ > 1 && !bus_room(uint32_t(n_names))) return false;
    if (!sub && a.size() == 1) all.assign(set.begin(), set.end());
    auto count = [&]() -> int64_t {
        return k == Kind::shard ? int64_t(cl.subs[2].size()) : int64_t(cl.n_subs());
    };
    const bool rep = replying(cl);
    bool ok = true;
    auto frame = [&](std::string_view name, bool null_name) {
        if (!rep) return;
        ok = ok && cl.out.push(3, cl.resp) && cl.out.bulk(kind_word(k, sub)) &&
             (null_name ? cl.out.null(cl.resp) : cl.out.bulk(name)) && cl.out.integer(count());
    };
    auto one = [&](std::string_view name) {
        if (sub) {
            if (set.emplace(name).second) {
                topics_.subscribe(k, name, cl.sid);
                announce(cl, k, name, +1, true);
            }
        } else {
            auto it = set.find(std::string(name));
            if (it != set.end()) {
                set.erase(it);
                topics_.unsubscribe(k, name, cl.sid);
                announce(cl, k, name, -1, true);
            }
        }
        frame(name, false);
    };
    if (a.size() > 1) {
        for (size_t i = 1; i < a.size(); ++i) one(sv(a[i]));
    } else if (!all.empty()) {
        for (const std::string& n : all) one(n);
    } else {
        frame({}, true);
    }
    if (!ok) kill_later(cl, "no mbufs for a reply");
    mark_dirty(cl);
    return true;
}

// A published message's frames, formatted once per variant (RESP2 and RESP3 message frames,
// and the last pattern's pmessage frame) rather than once per subscriber. A payload shorter than
// Config::copy_below is copied into the variant behind its header, so that each delivery is one
// copy of the whole frame into the subscriber's output; a longer one is referenced from every
// frame (rte_pktmbuf_clone of the one payload chain), never copied.
struct Broker::Fanout {
    static constexpr uint32_t kBytes = 2048;  // header, and payload + CRLF when copied
    struct Variant {
        bool built = false;
        bool whole = false;  // bytes holds the payload and its CRLF too
        int resp = 0;
        const std::string* pattern = nullptr;
        uint32_t hdr = 0;  // header bytes; 0: too long for bytes (encoded piece by piece)
        uint32_t len = 0;  // bytes to copy: hdr, or the whole frame
        char bytes[kBytes];
    };
    Kind k = Kind::channel;  // channel (PUBLISH) or shard (SPUBLISH)
    std::string_view kind;   // "message" or "smessage"
    std::string_view channel;
    uint32_t payload_len = 0;
    bool copy = false;
    const char* bytes = nullptr;  // the payload's bytes, contiguous, when at hand
    rte_mbuf* payload = nullptr;  // the payload and its CRLF (not consumed), once there is one
    // Where payload_mbuf() makes the chain from when there is none (a PUBLISH on this core).
    Broker* src = nullptr;
    const InBuf* src_in = nullptr;
    const Arg* src_arg = nullptr;
    bool own = false;  // payload was made here: freed with the Fanout
    int from = -1;     // the core that published it (another core's: over the bus), -1: here
    Variant v[3];      // [0] RESP2 message, [1] RESP3 message, [2] the last pmessage built

    Fanout() = default;
    Fanout(const Fanout&) = delete;
    Fanout& operator=(const Fanout&) = delete;
    ~Fanout() {
        if (own) rte_pktmbuf_free(payload);
    }
    void init(Kind kk, std::string_view ch, uint32_t len, bool copy_it) {
        k = kk;
        kind = message_kind(k);
        channel = ch;
        payload_len = len;
        copy = copy_it;
    }
    // The 16-bit sum of a payload segment's bytes (proto::fold_sum of sum_bytes), for
    // Tcp::send_ref: summed once per message, not per subscriber, the first kSums segments.
    static constexpr unsigned kSums = 4;
    const rte_mbuf* sum_seg[kSums] = {};
    uint16_t sums[kSums] = {};
    int32_t seg_sum(const rte_mbuf* seg) {
        for (unsigned i = 0; i < kSums; ++i) {
            if (sum_seg[i] == seg) return sums[i];
            if (!sum_seg[i]) {
                sum_seg[i] = seg;
                sums[i] = proto::fold_sum(
                    proto::sum_bytes(rte_pktmbuf_mtod(seg, const void*), seg->data_len));
                return sums[i];
            }
        }
        return -1;
    }
    // The payload as an mbuf chain ending in its CRLF; nullptr when out of mbufs.
    rte_mbuf* payload_mbuf() {
        if (payload || !src) return payload;
        payload = src->payload_chain(*src_in, *src_arg);
        own = payload != nullptr;
        return payload;
    }
    const Variant& variant(int resp, const std::string* pattern) {
        Variant& x = pattern ? v[2] : v[resp >= 3 ? 1 : 0];
        if (x.built && x.resp == resp && x.pattern == pattern) return x;
        x.built = true;
        x.resp = resp;
        x.pattern = pattern;
        x.hdr = pattern ? pmessage_header(x.bytes, kBytes, resp, *pattern, channel, payload_len)
                        : message_header(x.bytes, kBytes, resp, kind, channel, payload_len);
        x.len = x.hdr;
        x.whole = false;
        if (x.hdr && copy && uint64_t(x.hdr) + payload_len + 2 <= kBytes) {
            char* dst = x.bytes + x.hdr;
            if (bytes) {
                memcpy(dst, bytes, payload_len);
                dst[payload_len] = '\r';
                dst[payload_len + 1] = '\n';
            } else {
                const void* from = rte_pktmbuf_read(payload, 0, payload_len + 2, dst);
                if (!from) return x;
                if (from != dst) memcpy(dst, from, payload_len + 2);
            }
            x.len = x.hdr + payload_len + 2;
            x.whole = true;
        }
        return x;
    }
};

// A run of PUBLISHes (or SPUBLISHes) from one client's input to one channel, each payload
// shorter than Config::copy_below (copied into the frames anyway), none of them matched by a
// pattern on this core, the publisher subscribed to nothing: delivered to this core's
// subscribers together when the run ends (flush_batch). The run's frames are formatted once
// per protocol version, and each subscriber gets all of them as one copy (OutBuf::put_packed)
// instead of one delivery per message: per subscriber, one lookup, one limit check and one
// copy of ~1 KB rather than a dozen of each.
//
// A subscriber gets exactly the bytes the PUBLISHes one by one would have given it, in the
// same order: the run ends before anything else executes (execute() flushes it for any other
// command, cmd_publish for a PUBLISH that cannot join, process() when the client's input is
// done or waits), so no subscription changes under it and no other client's request comes
// between; a subscriber matched once per message (no pattern matches) cannot see two of the
// run's frames interleave differently; and the publisher's replies leave in the same
// flush_clients as the frames, never before them.
struct Broker::Batch {
    static constexpr uint32_t kMsgs = 64;
    static constexpr uint32_t kPayload = 8192;  // the payloads' bytes
    static constexpr uint32_t kFrames = 16384;  // the frames' bytes, for either version
    Kind k = Kind::channel;
    std::string channel;
    uint32_t n = 0;         // messages
    uint32_t bytes = 0;     // of data
    uint32_t frames = 0;    // of each version's frames
    uint32_t local = 0;     // this core's subscribers (all of them by the channel)
    uint32_t last_len = 0;  // the last message's length, and its frame's
    uint64_t last_frame = 0;
    uint32_t off[kMsgs + 1] = {};  // message i is data[off[i], off[i + 1])
    char data[kPayload];
    struct Frames {
        bool built = false;
        uint32_t len = 0;
        char bytes[kFrames];
    };
    Frames v[2];  // RESP2 "*3" frames, RESP3 ">3" pushes
    // The last message's request, byte for byte up to its payload (`*3 $7 PUBLISH $n channel
    // $len`), where it may be matched again (publish_same); req_len 0: none.
    static constexpr uint32_t kReq = 320;
    uint32_t req_len = 0;
    char req[kReq];

    Batch() { channel.reserve(256); }
    std::string_view kind() const { return message_kind(k); }
    bool same(Kind kk, std::string_view ch) const { return kk == k && ch == channel; }
    // Room for one more message of `len` bytes whose frame takes `frame`.
    bool room(uint32_t len, uint64_t frame) const {
        return n < kMsgs && bytes + len <= kPayload && frames + frame <= kFrames;
    }
    // Appends a message's payload (room() said it fits).
    void push(const char* p, uint32_t len, uint64_t frame) {
        memcpy(data + bytes, p, len);
        bytes += len;
        frames += uint32_t(frame);
        off[++n] = bytes;
    }
    std::string_view msg(uint32_t i) const { return {data + off[i], off[i + 1] - off[i]}; }
    const Frames& frames_for(int resp) {
        Frames& f = v[resp >= 3 ? 1 : 0];
        if (f.built) return f;
        f.built = true;
        f.len = 0;
        uint32_t hdr_at = 0, hdr_len = 0;  // the last header formatted, for the same length
        size_t hdr_for = SIZE_MAX;
        for (uint32_t i = 0; i < n; ++i) {
            const std::string_view m = msg(i);
            // Fits: batch_add counted each frame's size.
            if (m.size() == hdr_for) {
                memmove(f.bytes + f.len, f.bytes + hdr_at, hdr_len);
            } else {
                hdr_len = message_header(f.bytes + f.len, kFrames - f.len, resp, kind(), channel,
                                         uint32_t(m.size()));
                hdr_for = m.size();
            }
            hdr_at = f.len;
            f.len += hdr_len;
            memcpy(f.bytes + f.len, m.data(), m.size());
            f.len += uint32_t(m.size());
            f.bytes[f.len++] = '\r';
            f.bytes[f.len++] = '\n';
        }
        return f;
    }
};

Broker::Broker(const Config& c, unsigned worker)
    : cfg_(c), worker_(worker), batch_(std::make_unique<Batch>()), next_id_(1) {}

bool Broker::batch_add(Kind k, std::string_view channel, const Arg& msg, uint32_t local,
                       bool in_run) {
    Batch& b = *batch_;
    if (!in_run) flush_batch();
    if (!b.n || msg.len != b.last_len || k != b.k) {
        b.last_len = msg.len;
        b.last_frame =
            uint64_t(message_header_size(message_kind(k), channel, msg.len)) + msg.len + 2;
    }
    const uint64_t frame = b.last_frame;
    if (frame > Batch::kFrames || msg.len > Batch::kPayload) return false;
    if (!b.room(msg.len, frame)) flush_batch();
    if (!b.n) {
        b.k = k;
        b.channel.assign(channel);
        b.local = local;
        b.v[0].built = b.v[1].built = false;
    }
    b.push(msg.p, msg.len, frame);
    return true;
}

void Broker::flush_batch() {
    Batch& b = *batch_;
    if (!b.n) return;
    // With many subscribers their state is out of the cache: fetch it a few subscribers ahead.
    auto ahead = [&](SubId s) {
        const Client* c = clients_[s].get();
        rte_prefetch0(c);
        rte_prefetch0(&c->out);
        rte_prefetch0(&c->subs);
        rte_prefetch0(&c->live);
    };
    auto one = [&](SubId s, const std::string* pattern) {
        Client& sub = *clients_[s];
        if (!sub.live || sub.dead || !replying(sub)) return;
        bool ok = true;
        if (!pattern) {
            const Batch::Frames& f = b.frames_for(sub.resp);
            ok = sub.out.put_packed(f.bytes, f.len);
        } else {
            // Not expected (a run is matched by no pattern, and nothing subscribes during
            // it), but correct whatever happens: each message's pmessage frame.
            for (uint32_t i = 0; i < b.n && ok; ++i) {
                const std::string_view m = b.msg(i);
                ok = put_header_pieces(sub.out, sub.resp, b.kind(), pattern, b.channel,
                                       uint32_t(m.size())) &&
                     sub.out.put(m.data(), uint32_t(m.size())) && sub.out.put("\r\n", 2);
            }
        }
        if (!ok) {
            ctr_.no_mbuf_disconnects++;
            kill_later(sub, "no mbufs for a message");
            return;
        }
        ctr_.delivered += b.n;
        mark_dirty(sub);
        check_limits(sub, now_);
    };
    topics_.deliver(b.k, b.channel, one, ahead);
    ctr_.batched += b.n;
    b.n = 0;
    b.bytes = 0;
    b.frames = 0;
    b.req_len = 0;
}

// A pipelining publisher sends the same request again and again but for the payload's bytes
// (bench/pubsub's generator, redis-benchmark, a feed): where the next request is the run's last
// one byte for byte up to its payload, and the payload and the two bytes after it are whole in
// the first segment, it joins the run as cmd_publish would have it join (the same reply, counters
// and frames), without the parser, the command table or the channel lookup. The channel's
// subscribers cannot change within the pass (nothing else executes), so the run's count holds;
// the run was only opened for a publisher replied to normally (cmd_publish: req_len).
bool Broker::publish_same(Client& cl, uint32_t& done) {
    Batch& b = *batch_;
    const uint32_t pre = b.req_len, len = b.last_len, total = pre + len + 2;
    if (!pre || cl.in.size() < total) return false;
    uint32_t avail = 0;
    const char* p = cl.in.span(0, avail);
    // (The two bytes after the payload go unchecked, as the parser leaves them: as Redis.)
    if (avail < total || memcmp(p, b.req, pre) != 0) return false;
    if (!b.room(len, b.last_frame)) return false;            // a new run: cmd_publish starts it
    if (!reserve(publish_need(b.local, len))) return false;  // as cmd_publish: it pauses
    ctr_.commands++;
    b.push(p + pre, len, b.last_frame);
    ctr_.published++;
    ctr_.unparsed++;
    if (!cl.out.integer(b.local)) kill_later(cl, "no mbufs for a reply");
    mark_dirty(cl);
    const uint32_t credited = std::min(total, cl.credited);
    cl.in.consume(total);
    done += total - credited;
    cl.credited -= credited;
    return true;
}

bool Broker::cmd_publish(Tcp&, Client& cl, Kind k) {
    const std::vector<Arg>& a = cl.req.args;
    const std::string_view channel = sv(a[1]);
    const Arg& msg = a[2];
    // Within a run (Batch) nothing subscribes or leaves: its count still holds.
    uint32_t by_pattern = 0;
    const bool in_run = batch_->n && batch_->same(k, channel);
    const uint32_t local = in_run ? batch_->local : topics_.local_count(k, channel, &by_pattern);
    uint32_t remote_cores = 0, remote = 0;
    bool interested[Bus::kMaxCores] = {};
    if (n_cores_ > 1) {
        bool full = false;
        remote = topics_.remote_fanout(k, channel, [&](unsigned j, uint32_t) {
            interested[j] = true;
            remote_cores++;
            rte_ring* r = cfg_.bus->ring[worker_][j].load(std::memory_order_acquire);
            if (!overflow_[j].empty() || rte_ring_free_count(r) == 0) full = true;
        });
        if (full) return false;  // wait for ring room
    }
    const uint32_t count = local + remote;
    if (local || remote_cores) {
        // Wait for mbufs (slow consumers are cut off meanwhile).
        if (!reserve(publish_need(local + remote_cores, msg.len))) return false;
        Fanout f;
        f.init(k, channel, msg.len, msg.len < cfg_.copy_below);
        f.bytes = msg.p;  // copied frames take the bytes from here: no mbuf for the payload
        f.src = this;
        f.src_in = &cl.in;
        f.src_arg = &msg;
        // Referenced frames, and the other cores, share one mbuf chain of the payload and its
        // CRLF: the received bytes by reference (zero copy).
        if ((remote_cores || !f.copy) && !f.payload_mbuf()) return false;
        if (local && f.copy && !by_pattern && !cl.subscribed() &&
            batch_add(k, channel, msg, local, in_run)) {
            // The request's bytes up to the payload, for publish_same: only where nothing but
            // this core delivers it and the publisher is replied to normally.
            Batch& b = *batch_;
            const char* r = msg.off != kNoOffset && msg.off <= Batch::kReq && !remote_cores &&
                                    cl.reply == Client::Reply::on
                                ? cl.in.contiguous(0, msg.off)
                                : nullptr;
            b.req_len = r ? msg.off : 0;
            if (r) memcpy(b.req, r, msg.off);
        } else {
            flush_batch();
            deliver_local(f);
        }
        for (unsigned j = 0; j < n_cores_; ++j) {
            if (!interested[j]) continue;
            rte_mbuf* m = bus_msg(BusType::publish, k, 0, channel, kNoToken, 0);
            rte_mbuf* ref = m ? rte_pktmbuf_clone(f.payload, clones_) : nullptr;
            if (!ref) {
                if (m) rte_pktmbuf_free(m);
                ctr_.bus_no_mbuf++;
                continue;
            }
            reinterpret_cast<BusMsg*>(rte_pktmbuf_mtod(m, char*))->payload_len = msg.len;
            rte_pktmbuf_chain(m, ref);
            bus_send(j, m);
            ctr_.remote_out++;
        }
    }
    ctr_.published++;
    if (replying(cl) && !cl.out.integer(count)) kill_later(cl, "no mbufs for a reply");
    mark_dirty(cl);
    return true;
}

rte_mbuf* Broker::payload_chain(const InBuf& in, const Arg& msg) {
    // By reference to the received bytes (zero copy); a payload from an inline request (or not
    // followed by CRLF) is copied once into a fresh mbuf.
    const bool crlf = msg.off != kNoOffset && in.size() >= msg.off + msg.len + 2 &&
                      in.at(msg.off + msg.len) == '\r' && in.at(msg.off + msg.len + 1) == '\n';
    if (crlf) return in.clone(msg.off, msg.len + 2, clones_);
    OutBuf tmp(pool_);
    if (tmp.put(msg.p, msg.len) && tmp.put("\r\n", 2)) return tmp.take();
    return nullptr;
}

uint32_t Broker::deliver_local(Kind k, std::string_view channel, rte_mbuf* payload,
                               uint32_t payload_len, int from) {
    Fanout f;
    f.init(k, channel, payload_len, payload_len < cfg_.copy_below);
    f.payload = payload;
    f.from = from;
    return deliver_local(f);
}

uint32_t Broker::deliver_local(Fanout& f) {
    flush_batch();  // (empty outside a client's requests: a safeguard)
    auto one = [&](SubId s, const std::string* pattern) {
        if (!deliver_frame(*clients_[s], f, pattern)) {
            ctr_.no_mbuf_disconnects++;
            kill_later(*clients_[s], "no mbufs for a message");
        }
    };
    if (f.from < 0 || changes_.empty()) return topics_.deliver(f.k, f.channel, one);
    // Published on core `from` while some of this core's subscription changes were in flight:
    // delivered to the subscriptions as that core counted them (its reply to PUBLISH), not as
    // they are here now. A subscription made here that it has not acknowledged yet is skipped
    // (it did not count it: the PUBLISH came first); one dropped here that it still counted
    // gets the message (the UNSUBSCRIBE came after the PUBLISH).
    const unsigned from = unsigned(f.from);
    uint32_t n = 0;
    topics_.deliver(f.k, f.channel, [&](SubId s, const std::string* pattern) {
        if (seen_state(s, pattern ? Kind::pattern : f.k, pattern ? *pattern : f.channel, from) == 0)
            return;
        n++;
        one(s, pattern);
    });
    for (size_t i = 0; i < changes_.size(); ++i) {
        const Change& c = changes_[i];
        if (c.delta > 0 || c.sid >= clients_.size()) continue;
        const bool match = c.k == f.k ? c.name == f.channel
                                      : (c.k == Kind::pattern && f.k == Kind::channel &&
                                         glob_match(c.name, f.channel));
        if (!match) continue;
        Client& cl = *clients_[c.sid];
        if (!cl.live || cl.gen != c.gen) continue;           // the client is gone
        if (cl.subs[unsigned(c.k)].count(c.name)) continue;  // subscribed: delivered above
        bool later = false;  // one delivery per subscription: at its last change
        for (size_t j = i + 1; j < changes_.size() && !later; ++j) {
            const Change& d = changes_[j];
            later = d.sid == c.sid && d.gen == c.gen && d.k == c.k && d.name == c.name;
        }
        if (later || seen_state(c.sid, c.k, c.name, from) != 1) continue;
        n++;
        one(c.sid, c.k == Kind::pattern ? &c.name : nullptr);
    }
    return n;
}

bool Broker::reserve(uint32_t need) {
    if (budget_ >= int64_t(need)) {
        budget_ -= need;
        return true;
    }
    const int64_t cap = int64_t(
        std::min({clones_->size, out_->size,
                  tcp_ ? tcp_->config().sq_blocks * proto::TcpSqBlock::kPieces : UINT32_MAX}));
    if (int64_t(need) + reserve_ >= cap) return true;  // never available: go ahead
    // Deliveries take send-queue pieces too (Tcp::send_ref), as many as they would mbufs.
    budget_ = int64_t(std::min({rte_mempool_avail_count(clones_), rte_mempool_avail_count(out_),
                                tcp_ ? tcp_->sq_free_pieces() : UINT32_MAX})) -
              reserve_;
    if (budget_ < int64_t(need)) {
        relieve_pools();
        return false;
    }
    budget_ -= need;
    return true;
}

void Broker::relieve_pools() {
    if (now_ < next_relief_) return;
    next_relief_ = now_ + hz_ / 10;
    Client* worst = nullptr;
    uint64_t most = 0;
    for (auto& c : clients_) {
        if (!c->live || c->dead || !c->conn) continue;
        const uint64_t held = holding(*c);
        if (held > most) {
            most = held;
            worst = c.get();
        }
    }
    if (worst && most >= kPoolReserve) {
        ctr_.slow_disconnects++;
        kill_later(*worst, "holding the fan-out pools");
    }
}

int Broker::seen_state(SubId s, Kind k, std::string_view name, unsigned from) const {
    if (s >= clients_.size()) return -1;
    const uint32_t gen = clients_[s]->gen;
    const uint32_t seen = acked_[from];
    int first = 0, last_seen = 0;
    for (const Change& c : changes_) {
        if (c.sid != s || c.gen != gen || c.k != k || c.name != name) continue;
        if (!first) first = c.delta;
        if (int32_t(c.seq - seen) <= 0) last_seen = c.delta;
    }
    if (!first) return -1;
    if (last_seen) return last_seen > 0 ? 1 : 0;
    return first > 0 ? 0 : 1;  // as it was before the first change
}

void Broker::prune_changes() {
    while (!changes_.empty()) {
        const uint32_t seq = changes_.front().seq;
        for (unsigned j = 0; j < n_cores_; ++j)
            if (j != worker_ && int32_t(seq - acked_[j]) > 0) return;
        changes_.pop_front();
    }
}

bool Broker::direct(const Client& cl, uint32_t bytes) const {
    return tcp_ && cl.conn && cl.out.empty() && !cl.pending_acks && !cl.closing &&
           tcp_->send_space(cl.conn) >= bytes;
}

bool Broker::deliver_frame(Client& sub, Fanout& f, const std::string* pattern) {
    if (!sub.live || sub.dead) return true;
    if (!replying(sub)) return true;
    const Fanout::Variant& v = f.variant(sub.resp, pattern);
    rte_mbuf* payload = nullptr;
    if (!v.whole) {
        payload = f.payload_mbuf();
        if (!payload) return false;
    }
    // Straight into TCP's send queue when nothing of the client's output waits ahead: the
    // header (or the whole small frame) copied, the payload queued by reference
    // (Tcp::send_ref: its reference count, no mbuf per delivery). What TCP does not take
    // (no mbuf, no send-queue piece) goes the buffered way below, in order.
    uint32_t hdr_done = 0;
    rte_mbuf* rest = payload;  // payload segments not queued yet
    if (v.hdr && !v.whole && direct(sub, v.len + payload->pkt_len)) {
        const int n = tcp_->send_copy(sub.conn, v.bytes, v.len);
        hdr_done = n > 0 ? uint32_t(n) : 0;
        if (hdr_done == v.len)
            while (rest && tcp_->send_ref(sub.conn, rest, 0, rest->data_len,
                                          tcp_->sw_l4_cksum() ? f.seg_sum(rest) : -1) == 0)
                rest = rest->next;
    }
    bool ok = true;
    if (hdr_done == v.len) {
        // all of it is queued
    } else if (v.whole) {
        ok = sub.out.put_frame(v.bytes, v.len);
    } else if (v.hdr) {
        ok = sub.out.put(v.bytes + hdr_done, v.len - hdr_done);
    } else {  // a long name: the encoders, piece by piece
        ok = put_header_pieces(sub.out, sub.resp, f.kind, pattern, f.channel, f.payload_len);
    }
    if (!ok) return false;
    if (rest) {
        rte_mbuf* ref = rte_pktmbuf_clone(rest, clones_);
        if (!ref) return false;
        sub.out.put_chain(ref);
    }
    ctr_.delivered++;
    mark_dirty(sub);
    check_limits(sub, now_);
    return true;
}

// ---------------------------------------------------------------------------------------------
// Other commands.

void Broker::cmd_hello(Client& cl) {
    const std::vector<Arg>& a = cl.req.args;
    int resp = cl.resp;
    size_t i = 1;
    if (a.size() > 1) {
        int64_t v;
        if (!to_int64(sv(a[1]), v)) {
            reply_error(cl, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (v < 2 || v > 3) {
            reply_error(cl, "NOPROTO unsupported protocol version");
            return;
        }
        resp = int(v);
        i = 2;
    }
    std::string setname;
    bool has_name = false;
    for (; i < a.size(); ++i) {
        const bool more = i + 1 < a.size();
        if (iequals(sv(a[i]), "auth") && i + 2 < a.size()) {
            i += 2;  // no ACLs: the default user has no password
        } else if (iequals(sv(a[i]), "setname") && more) {
            setname.assign(sv(a[i + 1]));
            has_name = true;
            ++i;
        } else {
            std::string e = "ERR Syntax error in HELLO option '";
            e.append(sv(a[i]));
            e += "'";
            reply_error(cl, e);
            return;
        }
    }
    if (has_name) {
        for (char ch : setname)
            if (ch < '!' || ch > '~') {
                reply_error(cl,
                            "ERR Client names cannot contain spaces, newlines or special "
                            "characters.");
                return;
            }
        cl.name = setname;
    }
    cl.resp = resp;
    if (!replying(cl)) return;
    OutBuf& o = cl.out;
    const bool ok = o.map(7, resp) && o.bulk("server") && o.bulk("redis") && o.bulk("version") &&
                    o.bulk("7.0.15") && o.bulk("proto") && o.integer(resp) && o.bulk("id") &&
                    o.integer(int64_t(cl.id)) && o.bulk("mode") && o.bulk("standalone") &&
                    o.bulk("role") && o.bulk("master") && o.bulk("modules") && o.array(0);
    if (!ok) kill_later(cl, "no mbufs for a reply");
}

void Broker::cmd_client(Client& cl) {
    const std::vector<Arg>& a = cl.req.args;
    const std::string_view sub = sv(a[1]);
    const bool rep = replying(cl);
    bool ok = true;
    if (iequals(sub, "id") && a.size() == 2) {
        ok = !rep || cl.out.integer(int64_t(cl.id));
    } else if (iequals(sub, "getname") && a.size() == 2) {
        ok = !rep || (cl.name.empty() ? cl.out.null(cl.resp) : cl.out.bulk(cl.name));
    } else if (iequals(sub, "setname") && a.size() == 3) {
        const std::string_view n = sv(a[2]);
        for (char ch : n)
            if (ch < '!' || ch > '~') {
                reply_error(cl,
                            "ERR Client names cannot contain spaces, newlines or special "
                            "characters.");
                return;
            }
        cl.name.assign(n);
        ok = !rep || cl.out.simple("OK");
    } else if (iequals(sub, "reply") && a.size() == 3) {
        const std::string_view v = sv(a[2]);
        if (iequals(v, "on")) {
            cl.reply = Client::Reply::on;
            ok = cl.out.simple("OK");
        } else if (iequals(v, "off")) {
            cl.reply = Client::Reply::off;
        } else if (iequals(v, "skip")) {
            if (cl.reply == Client::Reply::skip_this || cl.reply == Client::Reply::on)
                cl.reply = Client::Reply::skip_next;
        } else {
            reply_error(cl, "ERR syntax error");
            return;
        }
    } else if (iequals(sub, "info") && a.size() == 2) {
        char line[256];
        const int n = snprintf(line, sizeof line,
                               "id=%" PRIu64 " name=%s db=0 sub=%zu psub=%zu ssub=%zu resp=%d\n",
                               cl.id, cl.name.c_str(), cl.subs[0].size(), cl.subs[1].size(),
                               cl.subs[2].size(), cl.resp);
        ok = !rep || cl.out.bulk({line, size_t(n)});
    } else if (iequals(sub, "setinfo") && a.size() == 4) {
        ok = !rep || cl.out.simple("OK");
    } else {
        const bool known = iequals(sub, "id") || iequals(sub, "getname") ||
                           iequals(sub, "setname") || iequals(sub, "reply") ||
                           iequals(sub, "info") || iequals(sub, "setinfo");
        if (known) {
            std::string lower(sub);
            for (char& ch : lower) ch = char(tolower(uint8_t(ch)));
            arity_error(cl, "client|" + lower);
        } else {
            std::string e = "ERR unknown subcommand '";
            e.append(sub.substr(0, 128));
            e += "'. Try CLIENT HELP.";
            reply_error(cl, e);
        }
        return;
    }
    if (!ok) kill_later(cl, "no mbufs for a reply");
}

void Broker::cmd_config(Client& cl) {
    const std::vector<Arg>& a = cl.req.args;
    const std::string_view sub = sv(a[1]);
    const bool rep = replying(cl);
    if (iequals(sub, "get")) {
        if (a.size() < 3) {
            arity_error(cl, "config|get");
            return;
        }
        char limit[160];
        snprintf(limit, sizeof limit,
                 "normal 0 0 0 slave 268435456 67108864 60 pubsub %" PRIu64 " %" PRIu64 " %u",
                 lim_hard(), lim_soft(), lim_soft_s());
        char bulk[24], port[8];
        snprintf(bulk, sizeof bulk, "%" PRIu64, cfg_.limits.max_bulk);
        snprintf(port, sizeof port, "%u", cfg_.listen_port);
        const std::pair<std::string_view, std::string_view> known[] = {
            {"appendonly", "no"},
            {"client-output-buffer-limit", limit},
            {"databases", "16"},
            {"maxmemory", "0"},
            {"notify-keyspace-events", ""},
            {"port", port},
            {"proto-max-bulk-len", bulk},
            {"save", ""},
            {"timeout", "0"},
        };
        bool hit[std::size(known)] = {};
        unsigned n = 0;
        for (size_t i = 2; i < a.size(); ++i) {
            std::string pat(sv(a[i]));
            for (char& ch : pat) ch = char(tolower(uint8_t(ch)));
            for (size_t j = 0; j < std::size(known); ++j)
                if (!hit[j] && glob_match(pat, known[j].first)) hit[j] = true, ++n;
        }
        if (!rep) return;
        bool ok = cl.out.map(n, cl.resp);
        for (size_t j = 0; j < std::size(known); ++j)
            if (hit[j]) ok = ok && cl.out.bulk(known[j].first) && cl.out.bulk(known[j].second);
        if (!ok) kill_later(cl, "no mbufs for a reply");
    } else if (iequals(sub, "set")) {
        if (a.size() < 4 || a.size() % 2) {
            arity_error(cl, "config|set");
            return;
        }
        for (size_t i = 2; i < a.size(); i += 2) {
            if (!iequals(sv(a[i]), "client-output-buffer-limit")) {
                std::string e = "ERR Unknown option or number of arguments for CONFIG SET - '";
                e.append(sv(a[i]));
                e += "'";
                reply_error(cl, e);
                return;
            }
            // "<class> <hard> <soft> <seconds>" groups; only the pubsub class applies here.
            std::string v(sv(a[i + 1]));
            std::vector<std::string> w;
            for (size_t p = 0; p < v.size();) {
                while (p < v.size() && v[p] == ' ') ++p;
                size_t q = p;
                while (q < v.size() && v[q] != ' ') ++q;
                if (q > p) w.emplace_back(v.substr(p, q - p));
                p = q;
            }
            bool good = !w.empty() && w.size() % 4 == 0;
            uint64_t h = 0, s = 0, t = 0;
            for (size_t g = 0; good && g < w.size(); g += 4) {
                good = (iequals(w[g], "normal") || iequals(w[g], "slave") ||
                        iequals(w[g], "replica") || iequals(w[g], "pubsub")) &&
                       to_memory(w[g + 1], h) && to_memory(w[g + 2], s) && to_memory(w[g + 3], t);
                if (good && iequals(w[g], "pubsub")) {
                    cfg_.out_hard = h;
                    cfg_.out_soft = s;
                    cfg_.out_soft_s = uint32_t(t);
                    if (cfg_.bus) {  // every core's limits (Redis has one server config)
                        cfg_.bus->out_hard.store(h, std::memory_order_relaxed);
                        cfg_.bus->out_soft.store(s, std::memory_order_relaxed);
                        cfg_.bus->out_soft_s.store(uint32_t(t), std::memory_order_relaxed);
                    }
                }
            }
            if (!good) {
                std::string e = "ERR Invalid argument '";
                e += v;
                e += "' for CONFIG SET 'client-output-buffer-limit'";
                reply_error(cl, e);
                return;
            }
        }
        if (rep && !cl.out.simple("OK")) kill_later(cl, "no mbufs for a reply");
    } else if (iequals(sub, "resetstat") && a.size() == 2) {
        if (rep && !cl.out.simple("OK")) kill_later(cl, "no mbufs for a reply");
    } else {
        std::string e = "ERR unknown subcommand '";
        e.append(sub.substr(0, 128));
        e += "'. Try CONFIG HELP.";
        reply_error(cl, e);
    }
}

// COMMAND: enough for tooling that asks (redis-cli, client libraries): Redis 7's ten-element
// entries, with no key specs (no command here takes keys).
void Broker::cmd_command(Client& cl) {
    const std::vector<Arg>& a = cl.req.args;
    if (!replying(cl)) return;
    OutBuf& o = cl.out;
    auto entry = [&](const CmdInfo& c) {
        unsigned nflags = 0;
        for (const char* p = c.flags; *p;) {
            while (*p == ' ') ++p;
            if (!*p) break;
            ++nflags;
            while (*p && *p != ' ') ++p;
        }
        bool ok = o.array(10) && o.bulk(c.name) && o.integer(c.arity) && o.set(nflags, cl.resp);
        for (const char* p = c.flags; ok && *p;) {
            while (*p == ' ') ++p;
            const char* q = p;
            while (*q && *q != ' ') ++q;
            if (q > p) ok = o.simple({p, size_t(q - p)});
            p = q;
        }
        return ok && o.integer(0) && o.integer(0) && o.integer(0) && o.set(1, cl.resp) &&
               o.simple(c.cmd >= Cmd::subscribe ? "@pubsub" : "@connection") && o.array(0) &&
               o.array(0) && o.array(0);
    };
    bool ok = true;
    if (a.size() == 1) {
        ok = o.array(uint32_t(std::size(kCommands)));
        for (const CmdInfo& c : kCommands) ok = ok && entry(c);
    } else if (iequals(sv(a[1]), "count")) {
        ok = o.integer(int64_t(std::size(kCommands)));
    } else if (iequals(sv(a[1]), "list")) {
        ok = o.array(uint32_t(std::size(kCommands)));
        for (const CmdInfo& c : kCommands) ok = ok && o.bulk(c.name);
    } else if (iequals(sv(a[1]), "info")) {
        ok = o.array(uint32_t(a.size() - 2));
        for (size_t i = 2; ok && i < a.size(); ++i) {
            std::string l(sv(a[i]));
            for (char& ch : l) ch = char(tolower(uint8_t(ch)));
            const CmdInfo* c = find_command(l);
            ok = c ? entry(*c) : o.null_array(cl.resp);
        }
    } else if (iequals(sv(a[1]), "docs")) {
        ok = o.map(0, cl.resp);
    } else {
        std::string e = "ERR unknown subcommand '";
        e.append(sv(a[1]).substr(0, 128));
        e += "'. Try COMMAND HELP.";
        reply_error(cl, e);
        return;
    }
    if (!ok) kill_later(cl, "no mbufs for a reply");
}

void Broker::cmd_info(Client& cl) {
    if (!replying(cl)) return;
    auto n_channels = [&](Kind k) {
        size_t n = 0;
        topics_.channels(k, nullptr, [&](std::string_view) { ++n; });
        return n;
    };
    unsigned live = 0;
    for (const auto& c : clients_) live += c->live;
    char buf[1536];
    const int n = snprintf(
        buf, sizeof buf,
        "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nsluice_broker:1\r\n"
        "sluice_worker:%u\r\nsluice_workers:%u\r\ntcp_port:%u\r\n\r\n"
        "# Clients\r\nconnected_clients:%u\r\n\r\n"
        "# Stats\r\ntotal_connections_received:%" PRIu64 "\r\ntotal_commands_processed:%" PRIu64
        "\r\npubsub_channels:%zu\r\npubsub_patterns:%" PRIu64
        "\r\npubsubshard_channels:%zu\r\n"
        "sluice_published:%" PRIu64 "\r\nsluice_delivered:%" PRIu64 "\r\nsluice_remote_out:%" PRIu64
        "\r\nsluice_remote_in:%" PRIu64 "\r\nsluice_slow_disconnects:%" PRIu64
        "\r\nsluice_paused:%" PRIu64 "\r\nsluice_protocol_errors:%" PRIu64 "\r\n",
        worker_, n_cores_, cfg_.listen_port, live, ctr_.connections, ctr_.commands,
        n_channels(Kind::channel), topics_.numpat(), n_channels(Kind::shard), ctr_.published,
        ctr_.delivered, ctr_.remote_out, ctr_.remote_in, ctr_.slow_disconnects, ctr_.paused,
        ctr_.protocol_errors);
    // RESP3: a verbatim string ("=<len>\r\ntxt:<text>\r\n"), as Redis 7.0 sends INFO.
    const std::string_view body(buf, size_t(std::clamp(n, 0, int(sizeof buf) - 1)));
    bool ok;
    if (cl.resp == 3) {
        char h[32];
        const int hn = snprintf(h, sizeof h, "=%zu\r\ntxt:", body.size() + 4);
        ok = cl.out.put(h, uint32_t(hn)) && cl.out.put(body.data(), uint32_t(body.size())) &&
             cl.out.put("\r\n", 2);
    } else {
        ok = cl.out.bulk(body);
    }
    if (!ok) kill_later(cl, "no mbufs for a reply");
}

void Broker::cmd_pubsub(Client& cl) {
    const std::vector<Arg>& a = cl.req.args;
    const std::string_view sub = sv(a[1]);
    const bool rep = replying(cl);
    OutBuf& o = cl.out;
    bool ok = true;
    const bool chans = iequals(sub, "channels"), shchans = iequals(sub, "shardchannels");
    const bool numsub = iequals(sub, "numsub"), shnumsub = iequals(sub, "shardnumsub");
    if (chans || shchans) {
        if (a.size() > 3) {
            arity_error(cl, chans ? "pubsub|channels" : "pubsub|shardchannels");
            return;
        }
        const Kind k = chans ? Kind::channel : Kind::shard;
        std::string_view pat;
        const std::string_view* pp = nullptr;
        if (a.size() == 3) {
            pat = sv(a[2]);
            pp = &pat;
        }
        std::vector<std::string_view> names;
        topics_.channels(k, pp, [&](std::string_view n) { names.push_back(n); });
        if (!rep) return;
        ok = o.array(uint32_t(names.size()));
        for (std::string_view n : names) ok = ok && o.bulk(n);
    } else if (numsub || shnumsub) {
        const Kind k = numsub ? Kind::channel : Kind::shard;
        if (!rep) return;
        ok = o.array(uint32_t((a.size() - 2) * 2));
        for (size_t i = 2; ok && i < a.size(); ++i)
            ok = o.bulk(sv(a[i])) && o.integer(int64_t(topics_.numsub(k, sv(a[i]))));
    } else if (iequals(sub, "numpat")) {
        if (a.size() != 2) {
            arity_error(cl, "pubsub|numpat");
            return;
        }
        ok = !rep || o.integer(int64_t(topics_.numpat()));
    } else {
        std::string e = "ERR unknown subcommand '";
        e.append(sub.substr(0, 128));
        e += "'. Try PUBSUB HELP.";
        reply_error(cl, e);
        return;
    }
    if (!ok) kill_later(cl, "no mbufs for a reply");
}

// ---------------------------------------------------------------------------------------------
// Output and limits.

void Broker::mark_dirty(Client& cl) {
    if (cl.dirty) return;
    cl.dirty = true;
    dirty_.push_back(cl.sid);
}

void Broker::flush_clients(Tcp& tcp) {
    // Kills first: they change subscriptions, which no delivery loop may be running over.
    for (const auto& [s, gen] : kills_) {
        Client& cl = *clients_[s];
        if (!cl.live || !cl.conn || cl.gen != gen) continue;  // gone, or the slot reused
        TcpConn* c = cl.conn;
        detach(cl);
        tcp.abort(c);  // on_tcp_closed(aborted) follows, for a connection with no client
    }
    kills_.clear();
    for (size_t i = 0; i < dirty_.size(); ++i) {
        Client& cl = *clients_[dirty_[i]];
        cl.dirty = false;
        if (!cl.live || cl.dead || !cl.conn) continue;
        if (cl.pending_acks) continue;  // held until every core has the subscription change
        while (!cl.out.empty()) {
            // At most as many segments as TCP has pieces free (a piece each), at most 65535
            // (nb_segs): a longer chain would be refused whole while a part of it fits.
            rte_mbuf* m = cl.out.take_front(std::min<uint32_t>(UINT16_MAX, tcp.sq_free_pieces()));
            if (!m) {  // no piece free on this core: retried once ACKs free some
                blocked_.push_back(cl.sid);
                ctr_.output_waits++;
                break;
            }
            const int rc = tcp.send(cl.conn, m);
            if (rc == -EAGAIN) {  // refused anyway: kept, retried
                cl.out.unshift(m);
                blocked_.push_back(cl.sid);
                ctr_.output_waits++;
                break;
            }
            if (rc != 0) rte_pktmbuf_free(m);  // the connection is going
        }
        if (cl.closing) {
            // Redis frees a client at QUIT or a protocol error at once: its subscriptions go
            // now, not when TCP finishes closing (TIME-WAIT may last minutes).
            TcpConn* c = cl.conn;
            tcp.close(c);
            detach(cl);
        }
    }
    dirty_.clear();
}

void Broker::kill_later(Client& cl, const char* why) {
    if (cl.dead) return;
    (void)why;
    cl.dead = true;
    kills_.emplace_back(cl.sid, cl.gen);
}

uint64_t Broker::holding(const Client& cl) {
    const TcpConn* c = cl.conn;
    return uint64_t(cl.out.mbufs()) + (c ? c->sq_refs + (c->sq_copy_m ? 1u : 0u) : 0u);
}

// Redis's client-output-buffer-limit for pub/sub clients (networking.c
// checkClientOutputBufferLimits): over the hard limit, or over the soft one for longer than
// its time, the client is disconnected. What counts: the broker's pending output and what TCP
// holds unacknowledged. Besides Redis's limits, what the client holds of the core's pools
// (holding(): the mbufs of its output buffer and those its TCP queue references, counted as
// they are, not estimated per frame: small frames share packed mbufs and send-queue pieces,
// so a client lagging by many of them holds few; and its queue's send-queue blocks) is capped
// too, so that one reader cannot hold what the others need.
void Broker::check_limits(Client& cl, uint64_t now) {
    if (!cl.conn || cl.dead || !cl.subscribed()) return;
    const uint64_t used = uint64_t(cl.out.size()) + cl.conn->sq_bytes;
    const uint64_t hard = lim_hard(), soft = lim_soft();
    if ((hard && used >= hard) || holding(cl) > mbuf_cap_ || cl.conn->sq_nblocks > block_cap_) {
        ctr_.slow_disconnects++;
        kill_later(cl, "output above the hard limit, or holding too much of the pools");
    } else if (soft && used >= soft) {
        if (!cl.soft_since) {
            cl.soft_since = now ? now : 1;
        } else if (now - cl.soft_since >= uint64_t(lim_soft_s()) * hz_) {
            ctr_.slow_disconnects++;
            kill_later(cl, "output above the soft limit for too long");
        }
    } else {
        cl.soft_since = 0;
    }
}

void Broker::poll(Tcp& tcp, uint64_t now) {
    now_ = now;
    if (n_cores_ > 1) bus_poll(tcp);
    if (!paused_.empty()) {
        // retry_ is empty between polls: swapping keeps both vectors' storage (no allocation).
        retry_.swap(paused_);
        for (SubId s : retry_) {
            Client& cl = *clients_[s];
            if (!cl.live || !cl.paused) continue;
            cl.paused = false;
            process(tcp, cl);
        }
        retry_.clear();
    }
    if (now >= next_limits_check_) {
        next_limits_check_ = now + hz_ / 10;
        for (auto& c : clients_)
            if (c->live && c->soft_since) check_limits(*c, now);
    }
    // Blocked output waits for TCP to free send-queue pieces (ACKs); until then a retry could
    // only fail again.
    if (!blocked_.empty() && tcp.sq_free_pieces()) {
        retry_.swap(blocked_);
        for (SubId s : retry_)
            if (clients_[s]->live) mark_dirty(*clients_[s]);
        retry_.clear();
    }
    if (!dirty_.empty() || !kills_.empty()) flush_clients(tcp);
}

// ---------------------------------------------------------------------------------------------
// The bus.

bool Broker::bus_attach() {
    n_cores_ = 1;
    if (!cfg_.bus) return true;
    Bus& b = *cfg_.bus;
    const unsigned n = rte_lcore_count();
    if (n <= 1) return true;
    if (n > Bus::kMaxCores) return false;
    for (unsigned j = 0; j < n; ++j) {
        if (j == worker_) continue;
        char name[RTE_RING_NAMESIZE];
        snprintf(name, sizeof name, "brk_%u_%u", j, worker_);
        rte_ring* r = rte_ring_create(name, Bus::kRingSize, int(rte_socket_id()),
                                      RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!r) {
            b.failed.store(true);
            return false;
        }
        b.ring[j][worker_].store(r, std::memory_order_release);
    }
    b.ready.fetch_add(1);
    // Every worker creates its inbound rings, then waits for the others (bounded).
    const uint64_t deadline = rte_rdtsc() + 10 * rte_get_tsc_hz();
    while (b.ready.load() < n) {
        if (b.failed.load() || rte_rdtsc() > deadline) return false;
        rte_pause();
    }
    n_cores_ = n;
    return true;
}

rte_mbuf* Broker::bus_msg(BusType t, Kind k, int delta, std::string_view name, uint32_t token,
                          uint32_t gen, uint32_t seq) {
    const uint32_t len = uint32_t(sizeof(BusMsg) + name.size());
    rte_mempool* mp =
        len <= uint32_t(rte_pktmbuf_data_room_size(small_) - RTE_PKTMBUF_HEADROOM) ? small_ : pool_;
    if (len > uint32_t(rte_pktmbuf_data_room_size(mp) - RTE_PKTMBUF_HEADROOM)) return nullptr;
    rte_mbuf* m = rte_pktmbuf_alloc(mp);
    if (!m) return nullptr;
    char* p = rte_pktmbuf_append(m, uint16_t(len));
    BusMsg h{};
    h.type = t;
    h.kind = uint8_t(k);
    h.delta = int16_t(delta);
    h.src = uint16_t(worker_);
    h.name_len = uint16_t(name.size());
    h.token = token;
    h.gen = gen;
    h.seq = seq;
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, name.data(), name.size());
    return m;
}

bool Broker::bus_room(uint32_t msgs) const {
    for (unsigned j = 0; j < n_cores_; ++j) {
        if (j == worker_) continue;
        rte_ring* r = cfg_.bus->ring[worker_][j].load(std::memory_order_acquire);
        if (!overflow_[j].empty() || rte_ring_free_count(r) < msgs) return false;
    }
    return true;
}

void Broker::bus_send(unsigned to, rte_mbuf* m) {
    rte_ring* r = cfg_.bus->ring[worker_][to].load(std::memory_order_acquire);
    if (overflow_[to].empty() && rte_ring_sp_enqueue(r, m) == 0) return;
    overflow_[to].push_back(m);  // acknowledgements must not be lost: sent on a later poll
}

bool Broker::announce(Client& cl, Kind k, std::string_view name, int delta, bool want_ack) {
    if (n_cores_ <= 1) return true;
    bool all = true;
    uint32_t seq = 0;
    if (want_ack) {
        seq = next_seq_++;
        if (seq == 0) seq = next_seq_++;  // 0: untracked
        changes_.push_back(
            Change{seq, cl.sid, cl.gen, k, int8_t(delta > 0 ? 1 : -1), std::string(name)});
    }
    for (unsigned j = 0; j < n_cores_; ++j) {
        if (j == worker_) continue;
        rte_mbuf* m =
            bus_msg(BusType::directory, k, delta, name, want_ack ? cl.sid : kNoToken, cl.gen, seq);
        if (!m) {
            ctr_.bus_no_mbuf++;
            all = false;
            continue;
        }
        bus_send(j, m);
        if (want_ack) cl.pending_acks++;
    }
    return all;
}

void Broker::bus_poll(Tcp& tcp) {
    (void)tcp;
    for (size_t i = 0; i < owed_acks_.size();) {
        const BusMsg& h = owed_acks_[i];
        rte_mbuf* ack = bus_msg(BusType::ack, Kind(h.kind), 0, {}, h.token, h.gen, h.seq);
        if (!ack) break;
        bus_send(h.src, ack);
        owed_acks_.erase(owed_acks_.begin() + long(i));
    }
    for (unsigned j = 0; j < n_cores_; ++j) {
        if (j == worker_) continue;
        // What could not be sent before, first.
        auto& q = overflow_[j];
        if (!q.empty()) {
            rte_ring* out = cfg_.bus->ring[worker_][j].load(std::memory_order_acquire);
            const unsigned sent = rte_ring_sp_enqueue_burst(out, reinterpret_cast<void**>(q.data()),
                                                            unsigned(q.size()), nullptr);
            q.erase(q.begin(), q.begin() + sent);
        }
        rte_ring* r = cfg_.bus->ring[j][worker_].load(std::memory_order_acquire);
        // All the ring holds now, not one burst: what this core received before this poll
        // (dispatched after it) must not overtake what the other core queued before it
        // answered an earlier request (a PUBLISH counted a subscriber, then the subscriber's
        // UNSUBSCRIBE: the message comes first, as in Redis). Messages held back by a publish
        // that waits for mbufs go first, and nothing overtakes them.
        std::vector<rte_mbuf*>& held = bus_held_[j];
        // One message: false when it is a publish that must wait for mbufs (not consumed).
        auto handle = [&](rte_mbuf* m) -> bool {
            BusMsg h;
            memcpy(&h, rte_pktmbuf_mtod(m, const char*), sizeof h);
            const std::string_view name(rte_pktmbuf_mtod_offset(m, const char*, sizeof h),
                                        h.name_len);
            switch (h.type) {
                case BusType::publish: {
                    const uint32_t segs = uint32_t(m->next ? m->next->nb_segs : 1);
                    if (!reserve(topics_.local_count(Kind(h.kind), name) * (1 + segs)))
                        return false;  // the pools are low: this and what follows wait
                    ctr_.remote_in++;
                    deliver_local(Kind(h.kind), name, m->next, h.payload_len, int(h.src));
                    break;
                }
                case BusType::directory:
                    topics_.remote_update(h.src, Kind(h.kind), name, h.delta);
                    if (h.token != kNoToken) {
                        // Acks go back in the order of the changes (owed ones first).
                        rte_mbuf* ack = owed_acks_.empty() ? bus_msg(BusType::ack, Kind(h.kind), 0,
                                                                     {}, h.token, h.gen, h.seq)
                                                           : nullptr;
                        if (ack) {
                            bus_send(h.src, ack);
                        } else {  // the client waits for it: built again on the next poll
                            if (owed_acks_.empty()) ctr_.bus_no_mbuf++;
                            owed_acks_.push_back(h);
                        }
                    }
                    break;
                case BusType::ack:
                    if (h.seq && h.src < Bus::kMaxCores) {
                        acked_[h.src] = h.seq;
                        prune_changes();
                    }
                    if (h.token < clients_.size()) {
                        Client& cl = *clients_[h.token];
                        if (cl.live && cl.gen == h.gen && cl.pending_acks) {
                            if (--cl.pending_acks == 0) mark_dirty(cl);
                        }
                    }
                    break;
            }
            rte_pktmbuf_free(m);
            return true;
        };
        size_t done = 0;
        bool wait = false;
        while (done < held.size() && !(wait = !handle(held[done]))) done++;
        held.erase(held.begin(), held.begin() + long(done));
        for (unsigned left = wait ? 0 : rte_ring_count(r); left;) {
            void* msgs[kBusBurst];
            const unsigned n =
                rte_ring_sc_dequeue_burst(r, msgs, std::min(left, kBusBurst), nullptr);
            if (n == 0) break;
            left -= n;
            for (unsigned i = 0; i < n; ++i) {
                rte_mbuf* m = static_cast<rte_mbuf*>(msgs[i]);
                if (wait || !handle(m)) {
                    wait = true;
                    held.push_back(m);  // in order, before anything later from the ring
                }
            }
            if (wait) break;
        }
    }
}

}  // namespace sluice::apps::broker
