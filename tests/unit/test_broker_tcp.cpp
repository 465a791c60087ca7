// apps/broker over Sluice's TCP, in one process on a virtual clock (tests/unit/tcp_pair.hpp):
// the broker serves on the "server" host, RESP clients on the "client" host subscribe and
// publish, and the test reads every byte the subscribers receive.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "apps/broker/broker.hpp"
#include "engine/runtime.hpp"
#include "tests/unit/tcp_pair.hpp"

namespace sluice::test {
namespace {

using apps::broker::Broker;
using proto::Tcp;
using proto::TcpCloseReason;
using proto::TcpConn;

constexpr uint16_t kRedisPort = 6379;

// A RESP client: sends `out` (as far as its send queue takes it, resuming when writable) and
// keeps everything it receives.
struct RespConn {
    TcpConn* conn = nullptr;
    bool connected = false, closed = false;
    std::string out;
    size_t sent = 0;
    std::string in;
};

// The client host's app: any number of RespConn, found through TcpConn::user.
struct RespClients : NoUdp {
    std::vector<std::unique_ptr<RespConn>> conns;

    RespConn& open(Tcp& t, uint64_t now) {
        conns.push_back(std::make_unique<RespConn>());
        RespConn& r = *conns.back();
        r.conn = t.connect(rte_cpu_to_be_32(kS2sServerIp), kRedisPort, now);
        if (r.conn) r.conn->user = &r;
        return r;
    }
    static RespConn& of(TcpConn* c) { return *static_cast<RespConn*>(c->user); }
    static void pump(Tcp& t, RespConn& r) {
        while (r.connected && r.conn && r.sent < r.out.size()) {
            const int n =
                t.send_copy(r.conn, r.out.data() + r.sent, uint32_t(r.out.size() - r.sent));
            if (n <= 0) return;  // on_tcp_writable resumes
            r.sent += size_t(n);
        }
    }
    void send(Tcp& t, RespConn& r, const std::string& s) {
        r.out += s;
        pump(t, r);
    }
    void on_tcp_connected(Tcp& t, TcpConn* c) {
        of(c).connected = true;
        pump(t, of(c));
    }
    void on_tcp_data(Tcp&, TcpConn* c, rte_mbuf* m) {
        for (rte_mbuf* s = m; s; s = s->next)
            of(c).in.append(rte_pktmbuf_mtod(s, const char*), s->data_len);
        rte_pktmbuf_free(m);
    }
    void on_tcp_peer_fin(Tcp&, TcpConn*) {}
    void on_tcp_writable(Tcp& t, TcpConn* c) { pump(t, of(c)); }
    void on_tcp_closed(Tcp&, TcpConn* c, TcpCloseReason) {
        of(c).closed = true;
        of(c).conn = nullptr;
    }
};

// (Built with append: GCC 12's -Wrestrict misfires on chains of operator+.)
std::string bulk(const std::string& s) {
    std::string r;
    r.reserve(s.size() + 16);
    r.append("$").append(std::to_string(s.size())).append("\r\n").append(s).append("\r\n");
    return r;
}

// Payload i: its number, then filler, `size` bytes.
std::string payload(unsigned i, size_t size) {
    char head[16];
    snprintf(head, sizeof head, "%08u:", i);
    std::string p(head);
    while (p.size() < size) p += char('a' + (p.size() + i) % 26);
    return p;
}

// n PUBLISH requests on "ch" of payload(i, size), and `want` extended by the message frames a
// subscriber of "ch" gets for them.
std::vector<std::string> publishes(unsigned n, size_t size, std::string& want) {
    std::vector<std::string> requests;
    for (unsigned i = 0; i < n; ++i) {
        const std::string p = payload(i, size);
        requests.push_back(
            std::string("*3\r\n").append(bulk("PUBLISH")).append(bulk("ch")).append(bulk(p)));
        want.append("*3\r\n").append(bulk("message")).append(bulk("ch")).append(bulk(p));
    }
    return requests;
}

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

constexpr unsigned kTestPool = 16383;

class BrokerTcp : public ::testing::Test {
  protected:
    void SetUp() override {
        pool_ = rte_pktmbuf_pool_create("t_brk_tcp", kTestPool, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                        int(rte_socket_id()));
        ASSERT_NE(pool_, nullptr);
    }
    void TearDown() override {
        // TCP first (its queues hold the broker's mbufs), then the broker, then the pools.
        if (pair_) pair_->destroy();
        pair_.reset();
        broker_.reset();
        clients_.reset();
        for (rte_mempool* p : engine::take_adopted_pools()) {
            EXPECT_EQ(rte_mempool_avail_count(p), p->size) << p->name << ": mbufs leaked";
            rte_mempool_free(p);
        }
        EXPECT_EQ(rte_mempool_avail_count(pool_), pool_->size) << "mbufs leaked";
        rte_mempool_free(pool_);
    }

    // The broker on the server host on kRedisPort, configured by `cfg` (its TCP settings included).
    // `client_rcv_buf`: the receive window the clients offer (0: TCP's default).
    void start(Broker::Config cfg, uint32_t sq_blocks, uint32_t client_rcv_buf = 0) {
        cfg.listen_port = kRedisPort;
        broker_ = std::make_unique<Broker>(cfg, 0);
        S2sOptions o;
        broker_->tcp_config(o.server_tcp);
        o.server_tcp.sq_blocks = sq_blocks;
        if (client_rcv_buf) o.client_tcp.rcv_buf = client_rcv_buf;
        pair_ = std::make_unique<TcpPair>(pool_, o);
        ASSERT_TRUE(pair_->init());
        broker_->start(pair_->stcp(), pair_->now());
        ASSERT_EQ(broker_->exit_code(), 0);
        clients_ = std::make_unique<RespClients>();
    }

    // Rounds (the broker polled before each) until done() or the bound.
    template <class Done>
    bool run(Done done) {
        return pair_->run(*clients_, *broker_, [&] {
            broker_->poll(pair_->stcp(), pair_->now());
            return done();
        });
    }

    // kSubs subscribers to "ch", then a publisher of kMessages 1 KiB messages (by reference:
    // above --copy-below) keeping `window` PUBLISH commands without their reply, as a
    // pipelining client (and bench/pubsub's generator) does; TCP has `sq_blocks` send-queue
    // blocks. Every subscriber must get every message in order, the publisher every reply.
    // `whole_sw`: the broker's TCP builds segments whole and sums them itself, as on a port
    // that copies frames and has no checksum offload (net_memif).
    // `idle_polls`: once a client's output waits for send-queue pieces while TCP has none free,
    // the broker is polled that many times with nothing moving on the wire (no ACK can free a
    // piece): it must not retry the output in between (Broker::poll), which could only fail
    // again, and the wait is checked to have happened.
    void fan_out(uint32_t sq_blocks, unsigned kSubs, unsigned window, bool whole_sw = false,
                 unsigned idle_polls = 0) {
        ASSERT_NO_FATAL_FAILURE(start({}, sq_blocks));
        if (whole_sw) {
            pair_->stcp().set_linear_tx(true);
            pair_->stcp().set_sw_l4_cksum(true);
        }
        constexpr unsigned kMessages = 400;
        constexpr size_t kSize = 1024;
        RespClients& cl = *clients_;
        Tcp& ct = pair_->ctcp();
        std::vector<RespConn*> subs;
        for (unsigned i = 0; i < kSubs; ++i) {
            RespConn& s = cl.open(ct, pair_->now());
            ASSERT_NE(s.conn, nullptr);
            cl.send(ct, s, "*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n");
            subs.push_back(&s);
        }
        const std::string subscribed = "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
        ASSERT_TRUE(run([&] {
            for (RespConn* s : subs)
                if (s->in.size() < subscribed.size()) return false;
            return true;
        })) << pair_->report();
        RespConn& pub = cl.open(ct, pair_->now());
        ASSERT_NE(pub.conn, nullptr);
        std::string want = subscribed, replies;
        const std::vector<std::string> requests = publishes(kMessages, kSize, want);
        for (unsigned i = 0; i < kMessages; ++i)
            replies.append(":").append(std::to_string(kSubs)).append("\r\n");
        const size_t reply_len = replies.size() / kMessages;
        unsigned queued = 0;
        bool idled = false;
        const bool done = run([&] {
            const uint64_t waits = broker_->counters().output_waits;
            if (idle_polls && !idled && waits && !pair_->stcp().sq_free_pieces()) {
                idled = true;
                for (unsigned i = 0; i < idle_polls; ++i)
                    broker_->poll(pair_->stcp(), pair_->now());
                EXPECT_EQ(broker_->counters().output_waits, waits)
                    << "output retried while TCP had no send-queue piece free";
            }
            while (queued < kMessages && queued - pub.in.size() / reply_len < window)
                cl.send(ct, pub, requests[queued++]);
            for (RespConn* s : subs)
                if (s->in.size() < want.size()) return false;
            return pub.in.size() >= replies.size();
        });
        EXPECT_TRUE(done) << "published " << pub.sent << " of " << pub.out.size() << " bytes; "
                          << "replies " << pub.in.size() << " of " << replies.size() << " bytes; "
                          << "first subscriber " << subs[0]->in.size() << " of " << want.size()
                          << " bytes\n"
                          << pair_->report();
        for (unsigned i = 0; i < kSubs; ++i) EXPECT_TRUE(subs[i]->in == want) << "subscriber " << i;
        EXPECT_TRUE(pub.in == replies)
            << pub.in.size() << " bytes of replies, " << replies.size() << " expected";
        EXPECT_EQ(broker_->counters().slow_disconnects, 0u);
        EXPECT_EQ(broker_->counters().delivered, uint64_t(kSubs) * kMessages);
        for (RespConn* s : subs) EXPECT_FALSE(s->closed);
        EXPECT_EQ(pair_->ctcp().counters().bad_checksum, 0u);
        if (idle_polls) {
            EXPECT_TRUE(idled) << "no output ever waited with every piece taken";
        }
    }

    rte_mempool* pool_ = nullptr;
    std::unique_ptr<Broker> broker_;
    std::unique_ptr<TcpPair> pair_;
    std::unique_ptr<RespClients> clients_;
};

// With few send-queue pieces per core (TcpConfig::sq_blocks: 256 here), the broker still
// delivers: its delivery budget keeps back a share of what the core has (Broker::start), not
// a fixed 2048 larger than all of it, which held every PUBLISH back for good.
TEST_F(BrokerTcp, FewSendQueuePiecesStillDeliverEverything) {
    fan_out(16, 4, 16);
}

// Eight subscribers and a wider window run the core's pieces out while frames are being
// delivered: TCP refuses (tcp.sq_full), the frames wait in the subscribers' output buffers and
// go, as many segments as there are pieces free, once ACKs free some. Nothing is lost or
// reordered, and no subscriber (each reads at full rate) is cut off: frames waiting in an
// output buffer hold mbufs, not pieces, and count against the mbuf share only.
TEST_F(BrokerTcp, FramesTcpRefusesWaitForPiecesAndGoInOrder) {
    fan_out(16, 8, 24);
    EXPECT_GT(pair_->stcp().counters().sq_full, 0u) << "the pieces never ran out";
    EXPECT_GT(broker_->counters().output_waits, 0u);
}

// Output waiting for send-queue pieces is retried only once TCP has some free again: polls in
// between, with no ACK to free one, leave it waiting (no retry, no new wait counted), and so
// does the publisher's paused PUBLISH, retried on every poll, as long as it cannot execute.
TEST_F(BrokerTcp, OutputWaitingForPiecesIsNotRetriedUntilSomeAreFree) {
    fan_out(16, 8, 24, false, 16);
}

// On a port that copies frames and has no TCP checksum offload (net_memif), segments are
// built whole and summed as they are copied, each payload's sum computed once per message
// (Tcp::send_ref's sum) for all subscribers: every segment arrives with a right checksum
// (the clients' stacks verify each), and everything in order.
TEST_F(BrokerTcp, WholeSegmentsSummedFromSharedPayloadSumsArriveIntact) {
    fan_out(1024, 8, 24, true);
    EXPECT_GT(pair_->stcp().counters().tx_linear, 0u);
}

// A subscriber that falls behind by more small messages than a quarter of the fan-out pools
// has mbufs (16,383 here), but by far less than Redis's output limits (8 MiB soft, 32 MiB
// hard), is not cut off: small frames are packed into shared mbufs and send-queue pieces, and
// what counts against the pools is what the client holds, not one mbuf per frame. Redis keeps
// such a subscriber too. It then catches up and gets every message, in order.
TEST_F(BrokerTcp, SubscriberBehindByManySmallMessagesIsNotCutOff) {
    ASSERT_NO_FATAL_FAILURE(start({}, 1024, 64 * 1024));
    constexpr unsigned kMessages = 20000;  // ~1.2 MB of frames
    constexpr unsigned kWindow = 512;
    RespClients& cl = *clients_;
    Tcp& ct = pair_->ctcp();
    RespConn& sub = cl.open(ct, pair_->now());
    ASSERT_NE(sub.conn, nullptr);
    // It stops reading: what it receives counts against its window until consumed().
    ct.set_manual_window(sub.conn, true);
    cl.send(ct, sub, "*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n");
    const std::string subscribed = "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    ASSERT_TRUE(run([&] { return sub.in.size() >= subscribed.size(); })) << pair_->report();
    RespConn& pub = cl.open(ct, pair_->now());
    ASSERT_NE(pub.conn, nullptr);
    std::string want = subscribed;
    const std::vector<std::string> requests = publishes(kMessages, 16, want);
    const std::string reply = ":1\r\n";
    unsigned queued = 0;
    ASSERT_TRUE(run([&] {
        while (queued < kMessages && queued - pub.in.size() / reply.size() < kWindow)
            cl.send(ct, pub, requests[queued++]);
        return pub.in.size() >= kMessages * reply.size();
    })) << "replies "
        << pub.in.size() / reply.size() << " of " << kMessages << "\n"
        << pair_->report();
    EXPECT_EQ(pub.in.size(), kMessages * reply.size());
    ASSERT_FALSE(sub.closed);
    EXPECT_EQ(broker_->counters().slow_disconnects, 0u);
    EXPECT_LT(sub.in.size(), want.size() / 4) << "its window held most of them back";
    // It reads again.
    ASSERT_TRUE(run([&] {
        if (sub.conn && sub.conn->rcv_held) ct.consumed(sub.conn, sub.conn->rcv_held);
        return sub.in.size() >= want.size() || sub.closed;
    })) << "subscriber "
        << sub.in.size() << " of " << want.size() << " bytes\n"
        << pair_->report();
    EXPECT_FALSE(sub.closed);
    EXPECT_TRUE(sub.in == want) << sub.in.size() << " bytes, " << want.size() << " expected";
    EXPECT_EQ(broker_->counters().delivered, uint64_t(kMessages));
}

// The other side of the cap: a subscriber that stops reading while 1 KiB messages (queued by
// reference, two send-queue pieces each) keep coming is cut off once its TCP queue holds more
// than a quarter of the core's send-queue blocks (64 here), long before 8 MiB; the subscriber
// that reads gets every message, and every mbuf comes back (TearDown).
TEST_F(BrokerTcp, SubscriberHoldingAQuarterOfTheSendQueueIsCutOff) {
    ASSERT_NO_FATAL_FAILURE(start({}, 64, 64 * 1024));
    constexpr unsigned kMessages = 1000;
    RespClients& cl = *clients_;
    Tcp& ct = pair_->ctcp();
    RespConn& stuck = cl.open(ct, pair_->now());
    RespConn& reader = cl.open(ct, pair_->now());
    ASSERT_NE(stuck.conn, nullptr);
    ASSERT_NE(reader.conn, nullptr);
    ct.set_manual_window(stuck.conn, true);
    const std::string subscribed = "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    for (RespConn* r : {&stuck, &reader}) cl.send(ct, *r, "*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n");
    ASSERT_TRUE(run([&] {
        return stuck.in.size() >= subscribed.size() && reader.in.size() >= subscribed.size();
    })) << pair_->report();
    RespConn& pub = cl.open(ct, pair_->now());
    ASSERT_NE(pub.conn, nullptr);
    std::string want = subscribed;
    const std::vector<std::string> requests = publishes(kMessages, 1024, want);
    auto replies = [&] {
        size_t n = 0;
        for (size_t i = pub.in.find("\r\n"); i != std::string::npos; i = pub.in.find("\r\n", i + 2))
            ++n;
        return n;
    };
    unsigned queued = 0;
    ASSERT_TRUE(run([&] {
        while (queued < kMessages && queued - replies() < 16) cl.send(ct, pub, requests[queued++]);
        return replies() >= kMessages && reader.in.size() >= want.size();
    })) << "replies "
        << replies() << " of " << kMessages << "; reader " << reader.in.size() << " of "
        << want.size() << " bytes\n"
        << pair_->report();
    EXPECT_TRUE(reader.in == want);
    EXPECT_FALSE(reader.closed);
    EXPECT_EQ(broker_->counters().slow_disconnects, 1u);
    ASSERT_TRUE(run([&] { return stuck.closed; })) << pair_->report();
    EXPECT_LT(stuck.in.size(), want.size() / 2);
}

// Runs of small PUBLISHes pipelined in one stream are delivered together (Broker::Batch):
// each subscriber must still get exactly what the PUBLISHes one by one give it, in order.
// The runs end at a change of channel, at a channel a pattern matches (message and pmessage
// interleave per message), while the publisher itself is subscribed (its pushes come before
// each reply), and before any other command; RESP2 and RESP3 subscribers get their own frames.
TEST_F(BrokerTcp, RunsOfSmallPublishesGiveEachSubscriberWhatOneByOneWould) {
    ASSERT_NO_FATAL_FAILURE(start({}, 1024));
    RespClients& cl = *clients_;
    Tcp& ct = pair_->ctcp();
    RespConn& s2 = cl.open(ct, pair_->now());
    RespConn& s3 = cl.open(ct, pair_->now());
    RespConn& sp = cl.open(ct, pair_->now());
    RespConn& pub = cl.open(ct, pair_->now());
    for (RespConn* r : {&s2, &s3, &sp, &pub}) ASSERT_NE(r->conn, nullptr);
    auto cmd = [](std::initializer_list<std::string> args) {
        std::string r = "*";
        r.append(std::to_string(args.size())).append("\r\n");
        for (const std::string& a : args) r += bulk(a);
        return r;
    };
    cl.send(ct, s2, cmd({"SUBSCRIBE", "a", "b"}));
    cl.send(ct, s3, cmd({"HELLO", "3"}) + cmd({"SUBSCRIBE", "a"}));
    cl.send(ct, sp, cmd({"SUBSCRIBE", "c1"}) + cmd({"PSUBSCRIBE", "c*"}));
    cl.send(ct, pub, cmd({"HELLO", "3"}) + cmd({"PING"}));
    ASSERT_TRUE(run([&] {
        return ends_with(s2.in, "$1\r\nb\r\n:2\r\n") && ends_with(s3.in, "$1\r\na\r\n:1\r\n") &&
               ends_with(sp.in, "$2\r\nc*\r\n:2\r\n") && ends_with(pub.in, "+PONG\r\n");
    })) << pair_->report();
    const size_t base2 = s2.in.size(), base3 = s3.in.size(), basep = sp.in.size(),
                 basepub = pub.in.size();

    auto frame = [](const char* head, std::initializer_list<std::string> parts) {
        std::string r = head;
        for (const std::string& x : parts) r += bulk(x);
        return r;
    };
    std::string req, want2, want3, wantp, wantpub;
    unsigned next = 0;
    // PUBLISH on `ch` of the next n payloads; `subscribed`: the publisher gets them too.
    auto publish = [&](const std::string& ch, unsigned n, bool subscribed = false) {
        for (unsigned i = 0; i < n; ++i) {
            const std::string p = payload(next++, 16);
            req += cmd({"PUBLISH", ch, p});
            unsigned count = 0;
            if (ch == "a" || ch == "b") {
                want2 += frame("*3\r\n", {"message", ch, p});
                ++count;
            }
            if (ch == "a") {
                want3 += frame(">3\r\n", {"message", ch, p});
                ++count;
            }
            if (ch == "c1") {
                wantp += frame("*3\r\n", {"message", ch, p});
                wantp += frame("*4\r\n", {"pmessage", "c*", ch, p});
                count += 2;
            }
            if (subscribed) {
                wantpub += frame(">3\r\n", {"message", ch, p});
                ++count;
            }
            wantpub.append(":").append(std::to_string(count)).append("\r\n");
        }
    };
    publish("a", 10);
    publish("b", 1);
    publish("a", 5);
    publish("c1", 2);  // matched by a pattern: not a run
    publish("a", 1);
    req += cmd({"SUBSCRIBE", "a"});
    wantpub += ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n";
    publish("a", 2, true);  // the publisher subscribed: not a run
    req += cmd({"UNSUBSCRIBE", "a"});
    wantpub += ">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n";
    publish("a", 10);
    req += cmd({"PING"});
    wantpub += "+PONG\r\n";
    cl.send(ct, pub, req);  // one stream: several segments, each several requests
    ASSERT_TRUE(run([&] { return pub.in.size() >= basepub + wantpub.size(); })) << pair_->report();
    ASSERT_TRUE(run([&] {
        return s2.in.size() >= base2 + want2.size() && s3.in.size() >= base3 + want3.size() &&
               sp.in.size() >= basep + wantp.size();
    })) << pair_->report();
    EXPECT_EQ(s2.in.substr(base2), want2);
    EXPECT_EQ(s3.in.substr(base3), want3);
    EXPECT_EQ(sp.in.substr(basep), wantp);
    EXPECT_EQ(pub.in.substr(basepub), wantpub);
    // 27 of the 31 messages went in runs (not c1's two, not the two the publisher got).
    EXPECT_EQ(broker_->counters().batched, 27u);
    EXPECT_EQ(broker_->counters().delivered, 29u + 28u + 4u + 2u);
}

// A PUBLISH that repeats the run's last request byte for byte but for its payload joins the
// run unparsed (Broker::publish_same): the subscribers, the publisher and the counters see
// exactly what parsing each would give. Another payload length, another spelling of the
// command, a request cut by the end of the input, CLIENT REPLY OFF or any other command in
// between each make the next PUBLISH go through the parser again.
TEST_F(BrokerTcp, PublishesRepeatingTheRunsLastRequestJoinItUnparsed) {
    ASSERT_NO_FATAL_FAILURE(start({}, 1024));
    RespClients& cl = *clients_;
    Tcp& ct = pair_->ctcp();
    RespConn& s2 = cl.open(ct, pair_->now());
    RespConn& s3 = cl.open(ct, pair_->now());
    RespConn& pub = cl.open(ct, pair_->now());
    for (RespConn* r : {&s2, &s3, &pub}) ASSERT_NE(r->conn, nullptr);
    cl.send(ct, s2, "*2\r\n" + bulk("SUBSCRIBE") + bulk("ch"));
    cl.send(ct, s3,
            "*2\r\n" + bulk("HELLO") + bulk("3") + "*2\r\n" + bulk("SUBSCRIBE") + bulk("ch"));
    cl.send(ct, pub, "*1\r\n" + bulk("PING"));
    ASSERT_TRUE(run([&] {
        return ends_with(s2.in, "$2\r\nch\r\n:1\r\n") && ends_with(s3.in, "$2\r\nch\r\n:1\r\n") &&
               ends_with(pub.in, "+PONG\r\n");
    })) << pair_->report();
    const size_t base2 = s2.in.size(), base3 = s3.in.size(), basepub = pub.in.size();
    const uint64_t parsed_before = broker_->counters().commands;

    std::string req, want2, want3, wantpub;
    unsigned next = 0;
    auto publish = [&](const char* name, unsigned n, uint32_t size, bool replied = true) {
        for (unsigned i = 0; i < n; ++i) {
            const std::string p = payload(next++, size);
            req += "*3\r\n" + bulk(name) + bulk("ch") + bulk(p);
            want2 += "*3\r\n" + bulk("message") + bulk("ch") + bulk(p);
            want3 += ">3\r\n" + bulk("message") + bulk("ch") + bulk(p);
            if (replied) wantpub += ":2\r\n";
        }
    };
    publish("PUBLISH", 5, 16);  // 1 parsed, 4 not
    publish("PUBLISH", 4, 17);  // another length: 1 parsed, 3 not
    publish("publish", 3, 17);  // another spelling: 1 parsed, 2 not
    req += "*1\r\n" + bulk("PING");
    wantpub += "+PONG\r\n";
    publish("PUBLISH", 2, 17);  // after another command: 1 parsed, 1 not
    req += "*3\r\n" + bulk("CLIENT") + bulk("REPLY") + bulk("OFF");
    publish("PUBLISH", 3, 17, false);  // not replied to: all 3 parsed
    req += "*3\r\n" + bulk("CLIENT") + bulk("REPLY") + bulk("ON");
    wantpub += "+OK\r\n";
    publish("PUBLISH", 2, 17);  // 1 parsed, 1 not
    ASSERT_LT(req.size(), 1400u) << "one segment";
    cl.send(ct, pub, req);
    ASSERT_TRUE(run([&] {
        return pub.in.size() >= basepub + wantpub.size() && s2.in.size() >= base2 + want2.size() &&
               s3.in.size() >= base3 + want3.size();
    })) << pair_->report();
    EXPECT_EQ(s2.in.substr(base2), want2);
    EXPECT_EQ(s3.in.substr(base3), want3);
    EXPECT_EQ(pub.in.substr(basepub), wantpub);
    const auto& c = broker_->counters();
    EXPECT_EQ(c.unparsed, 4u + 3u + 2u + 1u + 1u);
    EXPECT_EQ(c.commands - parsed_before, 19u + 3u) << "every request counted, parsed or not";
    EXPECT_EQ(c.published, 19u);
    EXPECT_EQ(c.batched, 19u);
    EXPECT_EQ(c.delivered, 2u * 19u);

    // A PUBLISH cut by the end of the input waits for the rest, as any request.
    const std::string p = payload(next++, 17);
    const std::string last = "*3\r\n" + bulk("PUBLISH") + bulk("ch") + bulk(p);
    cl.send(ct, pub,
            "*3\r\n" + bulk("PUBLISH") + bulk("ch") + bulk(payload(next - 2, 17)) +
                last.substr(0, last.size() - 5));
    ASSERT_TRUE(run([&] { return pub.in.size() >= basepub + wantpub.size() + 4; }))
        << pair_->report();
    cl.send(ct, pub, last.substr(last.size() - 5));
    ASSERT_TRUE(run([&] { return pub.in.size() >= basepub + wantpub.size() + 8; }))
        << pair_->report();
    EXPECT_EQ(pub.in.substr(basepub + wantpub.size()), ":2\r\n:2\r\n");
    const std::string tail = "*3\r\n" + bulk("message") + bulk("ch") + bulk(payload(next - 2, 17)) +
                             "*3\r\n" + bulk("message") + bulk("ch") + bulk(p);
    ASSERT_TRUE(run([&] { return s2.in.size() >= base2 + want2.size() + tail.size(); }))
        << pair_->report();
    EXPECT_EQ(s2.in.substr(base2 + want2.size()), tail);
    EXPECT_EQ(broker_->counters().published, 21u);
}

// Command names match in any case (Redis: strcasecmp), and only exactly: the lookup folds case
// by OR-ing 0x20, which no byte but a letter survives as a letter.
TEST_F(BrokerTcp, CommandNamesMatchInAnyCaseAndOnlyExactly) {
    ASSERT_NO_FATAL_FAILURE(start({}, 256));
    RespClients& cl = *clients_;
    Tcp& ct = pair_->ctcp();
    RespConn& c = cl.open(ct, pair_->now());
    ASSERT_NE(c.conn, nullptr);
    auto one = [](const std::string& name) {
        std::string r = "*1\r\n";
        return r.append(bulk(name));
    };
    const std::string pong = "+PONG\r\n";
    struct Case {
        std::string name;
        bool known;
    };
    const std::vector<Case> cases = {
        {"PING", true},     {"ping", true},
        {"pInG", true},     {"PING ", false},
        {"PIN", false},     {"PINGG", false},
        {"P\x09NG", false}, {"\xd0ING", false},
        {"PIN\x07", false}, {"PIN@", false},
        {"pin`", false},    {std::string("PI\0G", 4), false},
        {"", false},        {std::string(40, 'p'), false},
    };
    std::string req;
    for (const Case& k : cases) req += one(k.name);
    cl.send(ct, c, req);
    size_t lines = 0;
    ASSERT_TRUE(run([&] {
        lines = 0;
        for (size_t i = c.in.find("\r\n"); i != std::string::npos; i = c.in.find("\r\n", i + 2))
            ++lines;
        return lines >= cases.size();
    })) << pair_->report();
    size_t at = 0;
    for (const Case& k : cases) {
        const size_t end = c.in.find("\r\n", at);
        ASSERT_NE(end, std::string::npos);
        const std::string line = c.in.substr(at, end + 2 - at);
        at = end + 2;
        if (k.known)
            EXPECT_EQ(line, pong) << testing::PrintToString(k.name);
        else
            EXPECT_EQ(line.rfind("-ERR unknown command '", 0), 0u)
                << testing::PrintToString(k.name) << " got " << testing::PrintToString(line);
    }
    EXPECT_EQ(broker_->counters().unknown_commands, 11u);
}

}  // namespace
}  // namespace sluice::test
