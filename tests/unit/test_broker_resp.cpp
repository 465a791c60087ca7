// The broker's RESP front end (apps/broker/resp.hpp): InBuf over received mbuf chains, the
// request parser against Redis's networking.c (processMultibulkBuffer, processInlineBuffer)
// and sds.c (sdssplitargs), OutBuf and the RESP2/RESP3 encoders. Request streams are cut into
// mbufs at random points (1-byte and zero-length segments included) and fed as they "arrive":
// every cut must give the same requests, or the same error.
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "apps/broker/resp.hpp"
#include "tests/unit/unit_env.hpp"

namespace sluice::apps::broker {
namespace {

using test::pool_full;
using test::unit_pool;

using Strings = std::vector<std::string>;

// Bytes a fresh mbuf of the unit pool holds.
uint32_t room() {
    return rte_pktmbuf_data_room_size(unit_pool()) - RTE_PKTMBUF_HEADROOM;
}

// A chain of one segment per part (zero-length parts give zero-length segments).
rte_mbuf* chain(const Strings& parts) {
    for (const std::string& p : parts) EXPECT_LE(p.size(), room());
    rte_mbuf* head = nullptr;
    rte_mbuf* tail = nullptr;
    uint32_t len = 0;
    for (const std::string& p : parts) {
        rte_mbuf* m = rte_pktmbuf_alloc(unit_pool());
        EXPECT_NE(m, nullptr);
        if (!m) break;
        if (!p.empty()) memcpy(rte_pktmbuf_append(m, uint16_t(p.size())), p.data(), p.size());
        if (tail)
            tail->next = m;
        else
            head = m;
        tail = m;
        len += uint32_t(p.size());
    }
    if (head) {
        head->nb_segs = uint16_t(parts.size());
        head->pkt_len = len;
    }
    return head;
}

// `w` in pieces of `n` bytes.
Strings pieces(const std::string& w, size_t n) {
    Strings out;
    for (size_t i = 0; i < w.size(); i += n) out.push_back(w.substr(i, n));
    return out;
}

// The bytes of a chain; checks that nb_segs and pkt_len describe it.
std::string flatten(const rte_mbuf* m) {
    std::string s;
    uint32_t n = 0;
    for (const rte_mbuf* x = m; x; x = x->next) {
        s.append(rte_pktmbuf_mtod(x, const char*), x->data_len);
        ++n;
    }
    if (m) {
        EXPECT_EQ(m->nb_segs, n);
        EXPECT_EQ(m->pkt_len, s.size());
    }
    return s;
}

// Takes mbufs out of the pool until `keep` are left; gives them back on destruction.
struct Drain {
    std::vector<rte_mbuf*> held;
    explicit Drain(unsigned keep) {
        while (rte_mempool_avail_count(unit_pool()) > keep) {
            rte_mbuf* m = rte_pktmbuf_alloc(unit_pool());
            if (!m) break;
            held.push_back(m);
        }
    }
    ~Drain() {
        for (rte_mbuf* m : held) rte_pktmbuf_free(m);
    }
};

unsigned avail() {
    return rte_mempool_avail_count(unit_pool());
}

// --- request streams -------------------------------------------------------------------------

struct Expect {
    Strings args;
    bool is_inline;
    uint32_t total;
};

struct Stream {
    std::string wire;
    std::vector<Expect> reqs;
    std::string error;  // the error line that ends the stream, if any

    void raw(const std::string& bytes, Strings args, bool is_inline) {
        wire += bytes;
        reqs.push_back(Expect{std::move(args), is_inline, uint32_t(bytes.size())});
    }
    void mb(const Strings& args) { raw(multibulk(args), args, false); }
    void inl(const std::string& line, Strings args) { raw(line, std::move(args), true); }
    static std::string multibulk(const Strings& args) {
        // (Appended piece by piece: GCC 12 warns falsely on "*" + std::string, PR 105651.)
        std::string w = "*";
        w += std::to_string(args.size());
        w += "\r\n";
        for (const std::string& a : args) {
            w += '$';
            w += std::to_string(a.size());
            w += "\r\n";
            w += a;
            w += "\r\n";
        }
        return w;
    }
};

// The wire cut into deliveries (each a chain of 1 to 3 segments): zero-length segments, 1-byte
// segments and segments of up to max_piece bytes, at random.
std::vector<Strings> cut(const std::string& w, uint32_t seed, uint32_t max_piece) {
    std::mt19937 g(seed);
    std::vector<Strings> out;
    size_t i = 0;
    while (i < w.size()) {
        Strings d;
        const int nseg = 1 + int(g() % 3);
        for (int s = 0; s < nseg; ++s) {
            const uint32_t r = g() % 10;
            size_t len = r == 0 ? 0 : r < 4 ? 1 : 1 + g() % max_piece;
            len = std::min(len, w.size() - i);
            d.push_back(w.substr(i, len));
            i += len;
        }
        out.push_back(std::move(d));
    }
    return out;
}

struct Outcome {
    std::vector<Expect> reqs;
    std::string error;
    uint32_t left = 0;  // bytes not parsed at the end
};

// Feeds the deliveries one at a time, parsing (and consuming) whatever requests are complete.
Outcome run(const std::vector<Strings>& deliveries, RequestParser::Limits lim = {}) {
    InBuf in;
    RequestParser p(lim);
    Request req;
    Outcome o;
    for (const Strings& d : deliveries) {
        in.append(chain(d));
        for (;;) {
            std::string_view err;
            const Parse r = p.parse(in, req, err);
            if (r == Parse::need_more) break;
            if (r == Parse::error) {
                o.error = std::string(err);
                o.left = in.size();
                return o;
            }
            Expect e{{}, req.is_inline, req.total};
            for (const Arg& a : req.args) {
                e.args.emplace_back(a.p, a.len);
                if (req.is_inline) {
                    EXPECT_EQ(a.off, kNoOffset);
                } else {
                    // The offset names the same bytes in the InBuf (for clone()).
                    std::string at(a.len, '\0');
                    in.copy(a.off, a.len, at.data());
                    EXPECT_EQ(at, e.args.back());
                }
            }
            o.reqs.push_back(std::move(e));
            EXPECT_LE(req.total, in.size());
            in.consume(req.total);
        }
    }
    o.left = in.size();
    return o;
}

void expect_same(const Outcome& o, const Stream& s, uint32_t left = 0) {
    ASSERT_EQ(o.reqs.size(), s.reqs.size());
    for (size_t i = 0; i < s.reqs.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(o.reqs[i].args, s.reqs[i].args);
        EXPECT_EQ(o.reqs[i].is_inline, s.reqs[i].is_inline);
        EXPECT_EQ(o.reqs[i].total, s.reqs[i].total);
    }
    EXPECT_EQ(o.error, s.error);
    if (s.error.empty()) {
        EXPECT_EQ(o.left, left);
    }
}

// The stream under many cuts, each giving the same outcome.
void check_cuts(const Stream& s, int seeds, uint32_t max_piece, RequestParser::Limits lim = {},
                uint32_t left = 0) {
    for (int seed = 0; seed < seeds; ++seed) {
        SCOPED_TRACE(testing::Message() << "seed " << seed);
        expect_same(run(cut(s.wire, uint32_t(seed), max_piece), lim), s, left);
        if (testing::Test::HasFailure()) return;
    }
    // And in full-sized segments, all at once.
    expect_same(run({pieces(s.wire, room())}, lim), s, left);
}

std::string bytes(std::mt19937& g, size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = char(g());
    return s;
}

// --- InBuf -----------------------------------------------------------------------------------

// Chains are split into their segments; zero-length ones are freed at once, and consume()
// frees each mbuf as soon as it is wholly consumed.
TEST(RespInBuf, AppendConsumeFreesWhatIsConsumed) {
    {
        const unsigned before = avail();
        InBuf in;
        in.append(chain({"", "abc", "", "de"}));
        in.append(chain({"f"}));
        EXPECT_EQ(in.size(), 6u);
        EXPECT_EQ(in.segments(), 3u);
        EXPECT_EQ(avail(), before - 3) << "the zero-length segments are back";
        EXPECT_EQ(in.at(0), 'a');
        EXPECT_EQ(in.at(3), 'd');
        EXPECT_EQ(in.at(5), 'f');
        in.consume(2);
        EXPECT_EQ(in.size(), 4u);
        EXPECT_EQ(in.at(0), 'c');
        EXPECT_EQ(avail(), before - 3) << "'abc' is not all consumed";
        in.consume(1);
        EXPECT_EQ(avail(), before - 2);
        EXPECT_EQ(in.at(0), 'd');
        in.consume(3);
        EXPECT_EQ(in.size(), 0u);
        EXPECT_EQ(in.segments(), 0u);
        EXPECT_EQ(avail(), before);
        in.append(chain({"xy"}));
        EXPECT_EQ(in.at(1), 'y');
    }
    EXPECT_TRUE(pool_full()) << "the destructor frees what is held";
}

TEST(RespInBuf, ClearFreesEverything) {
    InBuf in;
    in.append(chain({"hello", " ", "world"}));
    in.consume(3);
    in.clear();
    EXPECT_EQ(in.size(), 0u);
    EXPECT_TRUE(pool_full());
    in.append(chain({"again"}));
    EXPECT_EQ(in.size(), 5u);
    EXPECT_EQ(in.at(4), 'n');
    in.clear();
    EXPECT_TRUE(pool_full());
}

// copy() and contiguous() across segment boundaries.
TEST(RespInBuf, CopyAndContiguous) {
    InBuf in;
    in.append(chain({"0123", "4567", "89"}));
    char buf[10] = {};
    in.copy(2, 7, buf);
    EXPECT_EQ(std::string(buf, 7), "2345678");
    const char* p = in.contiguous(4, 4);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(std::string(p, 4), "4567");
    EXPECT_EQ(in.contiguous(3, 2), nullptr) << "spans two segments";
    EXPECT_NE(in.contiguous(9, 0), nullptr) << "empty ranges are contiguous";
    uint32_t n = 0;
    p = in.span(5, n);
    EXPECT_EQ(n, 3u);
    EXPECT_EQ(std::string(p, n), "567");
    in.consume(5);
    p = in.contiguous(0, 3);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(std::string(p, 3), "567") << "offsets count from the unconsumed front";
    in.clear();
    EXPECT_TRUE(pool_full());
}

// find_crlf: the '\r' before `limit`, the '\n' possibly in the next segment; a lone '\r' or a
// '\r' with its '\n' not yet received does not count.
TEST(RespInBuf, FindCrlfAcrossSegments) {
    InBuf in;
    in.append(chain({"ab\r", "\ncd\rx", "\r\n", "\r"}));
    const uint32_t n = in.size();  // "ab\r\ncd\rx\r\n\r"
    EXPECT_EQ(in.find_crlf(0, n), 2);
    EXPECT_EQ(in.find_crlf(3, n), 8) << "the lone '\\r' at 6 is skipped";
    EXPECT_EQ(in.find_crlf(3, 8), -1) << "'\\r' at 8 is not before the limit";
    EXPECT_EQ(in.find_crlf(0, 3), 2) << "its '\\n' may be at the limit";
    EXPECT_EQ(in.find_crlf(9, n), -1) << "the last '\\r' has no '\\n' yet";
    EXPECT_EQ(in.find('x', 0, n), 7);
    EXPECT_EQ(in.find('x', 0, 7), -1);
    EXPECT_EQ(in.find('q', 0, n), -1);
    in.clear();
    EXPECT_TRUE(pool_full());
}

// Random access against a string while the front is consumed in random steps: many small
// segments (the segment list is compacted as the front is dropped).
TEST(RespInBuf, RandomAccessWhileConsuming) {
    std::mt19937 g(7);
    const std::string all = bytes(g, 6000);
    InBuf in;
    Strings parts;
    for (size_t i = 0; i < all.size();) {
        const size_t k = std::min<size_t>(all.size() - i, g() % 6);
        parts.push_back(all.substr(i, k));
        i += k;
        if (parts.size() == 50) {
            in.append(chain(parts));
            parts.clear();
        }
    }
    in.append(chain(parts));
    ASSERT_EQ(in.size(), all.size());
    size_t front = 0;
    while (in.size()) {
        const uint32_t sz = in.size();
        for (int k = 0; k < 20; ++k) {
            const uint32_t off = g() % sz;
            ASSERT_EQ(in.at(off), uint8_t(all[front + off]));
            const uint32_t len = std::min<uint32_t>(sz - off, g() % 300);
            std::string got(len, '\0');
            in.copy(off, len, got.data());
            ASSERT_EQ(got, all.substr(front + off, len));
            const int64_t f = in.find(uint8_t(all[front + off]), 0, sz);
            ASSERT_EQ(f, int64_t(all.find(all[front + off], front)) - int64_t(front));
        }
        const uint32_t step = std::min<uint32_t>(sz, 1 + g() % 200);
        in.consume(step);
        front += step;
    }
    EXPECT_EQ(in.segments(), 0u);
    EXPECT_TRUE(pool_full());
}

// clone(): indirect mbufs over the InBuf's own buffers (no copy), one per segment spanned;
// they keep the bytes after the InBuf has consumed and freed its mbufs.
TEST(RespInBuf, CloneIsZeroCopyAndOutlivesConsume) {
    {
        InBuf in;
        in.append(chain({"xxhello", " wor", "ld!yy"}));
        rte_mbuf* c = in.clone(2, 12, unit_pool());
        ASSERT_NE(c, nullptr);
        EXPECT_EQ(c->nb_segs, 3);
        EXPECT_EQ(flatten(c), "hello world!");
        uint32_t off = 2;
        for (rte_mbuf* s = c; s; s = s->next) {
            EXPECT_FALSE(RTE_MBUF_DIRECT(s)) << "indirect";
            uint32_t n = 0;
            EXPECT_EQ(rte_pktmbuf_mtod(s, const char*), in.span(off, n)) << "the same bytes";
            off += s->data_len;
        }
        rte_mbuf* one = in.clone(3, 3, unit_pool());
        ASSERT_NE(one, nullptr);
        EXPECT_EQ(one->nb_segs, 1);
        EXPECT_EQ(flatten(one), "ell");
        rte_pktmbuf_free(one);
        in.consume(in.size());
        EXPECT_EQ(flatten(c), "hello world!") << "the clone holds the buffers";
        EXPECT_FALSE(pool_full());
        rte_pktmbuf_free(c);
    }
    EXPECT_TRUE(pool_full());
}

// Out of mbufs half way: nullptr, and the clones made so far go back.
TEST(RespInBuf, CloneOutOfMbufsLeaksNothing) {
    InBuf in;
    in.append(chain({"aaa", "bbb", "ccc"}));
    {
        Drain d(2);
        ASSERT_EQ(avail(), 2u);
        EXPECT_EQ(in.clone(1, 7, unit_pool()), nullptr) << "three segments, two mbufs";
        EXPECT_EQ(avail(), 2u);
        rte_mbuf* c = in.clone(1, 4, unit_pool());
        ASSERT_NE(c, nullptr);
        EXPECT_EQ(flatten(c), "aabb");
        rte_pktmbuf_free(c);
    }
    in.clear();
    EXPECT_TRUE(pool_full());
}

// Past kCoalesceAbove segments, what arrives is copied into big buffers (rte_malloc'd, external
// to their mbufs) and the received mbufs are freed at once: a 1 MB request holds 64 received
// mbufs and ~16 big buffers instead of 1049 received ones. Bytes, offsets, clones (which
// outlive consume) are as without; every buffer is freed in the end.
TEST(RespInBuf, CoalescesLongInputIntoBigBuffers) {
    rte_mempool* hdrs = rte_pktmbuf_pool_create("ut_big_hdrs", 63, 0, 0, 0, int(rte_socket_id()));
    ASSERT_NE(hdrs, nullptr);
    rte_malloc_socket_stats before{};
    ASSERT_EQ(rte_malloc_get_socket_stats(int(rte_socket_id()), &before), 0);
    std::mt19937 g(9);
    const std::string w = bytes(g, 1 << 20);
    {
        InBuf in;
        in.set_coalesce_pool(hdrs);
        for (const std::string& p : pieces(w, 1000)) in.append(chain({p}));
        EXPECT_EQ(in.size(), w.size());
        EXPECT_EQ(in.received_segments(), InBuf::kCoalesceAbove);
        const uint32_t big = in.segments() - in.received_segments();
        const uint32_t copied = uint32_t(w.size()) - InBuf::kCoalesceAbove * 1000;
        EXPECT_GE(big, copied / InBuf::kBigBuf + 1);
        EXPECT_LE(big, copied / (InBuf::kBigBuf - 256) + 1);
        EXPECT_EQ(rte_mempool_avail_count(hdrs), 63 - big);
        std::string back(w.size(), '\0');
        in.copy(0, uint32_t(w.size()), back.data());
        EXPECT_EQ(back, w);
        for (int i = 0; i < 1000; ++i) {
            const uint32_t o = uint32_t(g() % w.size());
            ASSERT_EQ(char(in.at(o)), w[o]) << o;
        }
        // Across the last received mbuf into the big buffers, and across big buffers.
        rte_mbuf* c = in.clone(60000, 200000, unit_pool());
        ASSERT_NE(c, nullptr);
        EXPECT_EQ(flatten(c), w.substr(60000, 200000));
        in.consume(300000);
        EXPECT_EQ(in.received_segments(), 0u);
        EXPECT_EQ(flatten(c), w.substr(60000, 200000)) << "the clone outlives consume";
        rte_pktmbuf_free(c);
        // Below kCoalesceAbove segments again, input is held as received.
        const uint32_t segs = in.segments();
        ASSERT_LT(segs, InBuf::kCoalesceAbove);
        in.append(chain({"tail"}));
        EXPECT_EQ(in.segments(), segs + 1);
        EXPECT_EQ(in.received_segments(), 1u);
        EXPECT_EQ(in.size(), w.size() - 300000 + 4);
        back.assign(in.size(), '\0');
        in.copy(0, in.size(), back.data());
        EXPECT_EQ(back, w.substr(300000) + "tail");
    }
    EXPECT_EQ(rte_mempool_avail_count(hdrs), 63u);
    rte_malloc_socket_stats after{};
    ASSERT_EQ(rte_malloc_get_socket_stats(int(rte_socket_id()), &after), 0);
    EXPECT_EQ(after.heap_allocsz_bytes, before.heap_allocsz_bytes) << "big buffers freed";
    rte_mempool_free(hdrs);
    EXPECT_TRUE(pool_full());
}

// --- string2ll -------------------------------------------------------------------------------

// Redis's string2ll: no '+', no spaces, no leading zeros, no "-0", fits in int64.
TEST(RespString2ll, AcceptsWhatRedisAccepts) {
    auto ok = [](std::string_view s, int64_t want) {
        int64_t v = 12345;
        EXPECT_TRUE(string2ll(s.data(), s.size(), &v)) << s;
        EXPECT_EQ(v, want) << s;
    };
    auto bad = [](std::string_view s) {
        int64_t v = 0;
        EXPECT_FALSE(string2ll(s.data(), s.size(), &v)) << s;
    };
    ok("0", 0);
    ok("7", 7);
    ok("-1", -1);
    ok("1048576", 1048576);
    ok("9223372036854775807", INT64_MAX);
    ok("-9223372036854775808", INT64_MIN);
    bad("");
    bad("-");
    bad("+1");
    bad(" 1");
    bad("1 ");
    bad("01");
    bad("-0");
    bad("00");
    bad("1a");
    bad("9223372036854775808");
    bad("-9223372036854775809");
    bad("18446744073709551616");
    bad("000000000000000000001");
}

// --- multibulk -------------------------------------------------------------------------------

// A pipeline of requests, cut at random points: the same requests every time.
TEST(RespParse, PipelineUnderRandomCuts) {
    Stream s;
    s.mb({"PING"});
    s.mb({"SUBSCRIBE", "news", "sport"});
    s.mb({"PUBLISH", "news", "hello world"});
    s.mb({"SET", "", "x"});
    s.mb({"ECHO", std::string(300, 'z')});
    s.mb({"PING"});
    check_cuts(s, 300, 8);
    check_cuts(s, 100, 200);
    EXPECT_TRUE(pool_full());
}

// Arguments are binary safe: CRLF, NUL, '*' and '$' inside are payload.
// A request whole in one segment takes the parser's fast path (parse_fast); one byte per
// segment never can. Both must come out the same for every request, valid or not: near misses
// of the fast path's shape (leading zeros, signs, ten-digit lengths, limits, a missing byte
// after '\r', unchecked bytes after a payload) fall back to the state machine.
TEST(RespParse, FastPathAgreesWithTheStateMachine) {
    const Strings inputs = {
        "*1\r\n$4\r\nPING\r\n",
        "*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$0\r\n\r\n",
        "*2\r\n$3\r\nget\r\n$01\r\na\r\n",
        "*2\r\n$3\r\nget\r\n$-1\r\n",
        "*2\r\n$3\r\nget\r\n$+1\r\na\r\n",
        "*1\r\n$3x\r\nabc\r\n",
        "*1\r\n$ 3\r\nabc\r\n",
        "*1\r\n$\r\n",
        "*1\r\n3\r\nabc\r\n",
        "*1\r\n$3\rXabcYZ*1\r\n$1\r\nz\r\n",  // the bytes after '\r' and a payload unchecked
        "*1\r\n$3\n\nabc\r\n",
        "*1\r\n$1000000000\r\n",
        "*1\r\n$999999999\r\nab",
        "*1\r\n$600000000\r\n",    // above proto-max-bulk-len
        "*1\r\n$6\r\nabcdef\r\n",  // above the small limit's
        "*01\r\n$1\r\na\r\n",
        "*0\r\n*1\r\n$1\r\na\r\n",
        "*-1\r\n*1\r\n$1\r\na\r\n",
        "*12\r\n$1\r\na\r\n",
        "*3\r\n$1\r\na\r\n$1\r\nb\r\n",  // incomplete
        "*2\r\n$1\r\na\r\n$1\r",
        "*2\r\n$1\r\na\r\n$1\r\nb\r",
        "*9\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n5\r\n$1\r\n6\r\n$1\r\n7\r\n"
        "$1\r\n8\r\n$1\r\n9\r\n",
        "*2\r\n$1\r\n\r\r\n$0\r\n\r\nPING\r\n",
    };
    RequestParser::Limits small;
    small.max_args = 2;
    small.max_bulk = 5;
    for (const RequestParser::Limits& lim : {RequestParser::Limits{}, small}) {
        for (const std::string& w : inputs) {
            SCOPED_TRACE(testing::Message()
                         << "input " << testing::PrintToString(w) << " max_args " << lim.max_args);
            const Outcome whole = run({{w}}, lim);
            const Outcome bytewise = run({pieces(w, 1)}, lim);
            ASSERT_EQ(whole.reqs.size(), bytewise.reqs.size());
            for (size_t i = 0; i < whole.reqs.size(); ++i) {
                EXPECT_EQ(whole.reqs[i].args, bytewise.reqs[i].args);
                EXPECT_EQ(whole.reqs[i].is_inline, bytewise.reqs[i].is_inline);
                EXPECT_EQ(whole.reqs[i].total, bytewise.reqs[i].total);
            }
            EXPECT_EQ(whole.error, bytewise.error);
            EXPECT_EQ(whole.left, bytewise.left);
        }
    }
    EXPECT_TRUE(pool_full());
}

TEST(RespParse, BinarySafeArguments) {
    Stream s;
    std::string all256;
    for (int c = 0; c < 256; ++c) all256 += char(c);
    s.mb({"PUBLISH", "ch\r\n", std::string("a\r\nb\0c\r\n", 8)});
    s.mb({"*1\r\n$4\r\n", "$-1\r\n", "\r\n\r\n"});
    s.mb({all256, "\r"});
    check_cuts(s, 200, 16);
    EXPECT_TRUE(pool_full());
}

// A random pipeline of multibulk requests (0 to 6 arguments of random bytes, some spanning
// several mbufs), empty requests and inline commands mixed in.
TEST(RespParse, RandomPipelines) {
    std::mt19937 g(2024);
    for (int round = 0; round < 12; ++round) {
        Stream s;
        for (int i = 0; i < 40; ++i) {
            const uint32_t kind = g() % 12;
            if (kind == 0) {
                s.raw(g() % 2 ? "*0\r\n" : "*-1\r\n", {}, false);
            } else if (kind == 1) {
                s.inl(g() % 2 ? "\r\n" : " \t \n", {});
            } else if (kind == 2) {
                s.inl("PING\r\n", {"PING"});
            } else {
                Strings args;
                const uint32_t n = 1 + g() % 6;
                for (uint32_t a = 0; a < n; ++a) {
                    const uint32_t r = g() % 20;
                    const size_t len = r < 14 ? g() % 20 : r < 19 ? g() % 3000 : 3000 + g() % 9000;
                    args.push_back(bytes(g, len));
                }
                s.mb(args);
            }
        }
        SCOPED_TRACE(round);
        check_cuts(s, 25, 200 + g() % 1800);
    }
    EXPECT_TRUE(pool_full());
}

// Every request is reported with its length: consume(total) lands on the next one, and a
// request not yet complete is left unconsumed.
TEST(RespParse, IncompleteTailStaysUnconsumed) {
    Stream s;
    s.mb({"A"});
    s.mb({"BB", "C"});
    const std::string tail = "*2\r\n$3\r\nfoo\r\n$3\r\nba";
    Stream t = s;
    t.wire += tail;
    check_cuts(t, 100, 5, {}, uint32_t(tail.size()));
    EXPECT_TRUE(pool_full());
}

// `*0` and `*-1` (any count <= 0) are empty requests: ok with no arguments, consumed.
TEST(RespParse, EmptyMultibulk) {
    Stream s;
    s.raw("*0\r\n", {}, false);
    s.raw("*-1\r\n", {}, false);
    s.raw("*-7\r\n", {}, false);
    s.mb({"PING"});
    check_cuts(s, 50, 3);
    EXPECT_TRUE(pool_full());
}

// `$0` is an empty argument.
TEST(RespParse, ZeroLengthBulk) {
    Stream s;
    s.mb({"", "", "x", ""});
    check_cuts(s, 50, 3);
    EXPECT_TRUE(pool_full());
}

// Redis skips the two bytes after a payload without looking at them.
TEST(RespParse, BytesAfterPayloadAreNotChecked) {
    Stream s;
    s.raw("*2\r\n$3\r\nfooXY$3\r\nbar!!", {"foo", "bar"}, false);
    s.mb({"PING"});
    check_cuts(s, 50, 4);
    EXPECT_TRUE(pool_full());
}

// A line ends at its first '\r' whatever follows it (Redis's strchr, then it skips 2 bytes).
TEST(RespParse, LineEndsAtFirstCrWhateverFollows) {
    Stream s;
    s.raw("*1\rX$4\r?PING\r\n", {"PING"}, false);
    check_cuts(s, 50, 3);
    EXPECT_TRUE(pool_full());
}

// An argument inside one mbuf is not copied: Arg::p points into the mbuf.
TEST(RespParse, ContiguousArgumentPointsIntoMbuf) {
    InBuf in;
    const std::string w = Stream::multibulk({"PUBLISH", "ch", "payload"});
    rte_mbuf* m = chain({w});
    const char* data = rte_pktmbuf_mtod(m, const char*);
    in.append(m);
    RequestParser p;
    Request req;
    std::string_view err;
    ASSERT_EQ(p.parse(in, req, err), Parse::ok);
    ASSERT_EQ(req.args.size(), 3u);
    for (const Arg& a : req.args) {
        EXPECT_GE(a.p, data);
        EXPECT_LE(a.p + a.len, data + w.size());
        EXPECT_EQ(a.p, data + a.off);
    }
    EXPECT_EQ(req.args[2].sv(), "payload");
    EXPECT_EQ(req.args[2].off, w.size() - 9);
    EXPECT_EQ(req.total, w.size());
    EXPECT_FALSE(req.is_inline);
    in.consume(req.total);
    EXPECT_TRUE(pool_full());
}

// Arguments that span segments are copied into the arena; with many of them (and contiguous
// ones between) every pointer stays right: the arena does not move while they are placed.
TEST(RespParse, ArenaPointersStayValid) {
    Strings args;
    for (int i = 0; i < 60; ++i) args.push_back(std::string(5 + i % 7, char('a' + i % 26)));
    const std::string w = Stream::multibulk(args);
    InBuf in;
    in.append(chain(pieces(w, 3)));
    RequestParser p;
    Request req;
    std::string_view err;
    ASSERT_EQ(p.parse(in, req, err), Parse::ok);
    ASSERT_EQ(req.args.size(), args.size());
    for (size_t i = 0; i < args.size(); ++i) EXPECT_EQ(req.args[i].sv(), args[i]) << i;
    in.consume(req.total);
    // A second, larger request through the same parser (the arena grows).
    args.push_back(std::string(5000, 'q'));
    const std::string w2 = Stream::multibulk(args);
    in.append(chain(pieces(w2, 7)));
    ASSERT_EQ(p.parse(in, req, err), Parse::ok);
    ASSERT_EQ(req.args.size(), args.size());
    for (size_t i = 0; i < args.size(); ++i) EXPECT_EQ(req.args[i].sv(), args[i]) << i;
    in.consume(req.total);
    EXPECT_TRUE(pool_full());
}

// A large PUBLISH payload over many mbufs: parsed as it arrives, its bytes exact, and its
// clone (with the CRLF after it, as the broker's fan-out takes it) is those bytes, by
// reference, with every mbuf back once both are freed.
TEST(RespParse, LargeArgumentAcrossManyMbufsAndItsClone) {
    std::mt19937 g(99);
    const std::string payload = bytes(g, 200000);
    const std::string w = Stream::multibulk({"PUBLISH", "big", payload});
    InBuf in;
    RequestParser p;
    Request req;
    std::string_view err;
    size_t i = 0;
    int need_more = 0;
    Parse r = Parse::need_more;
    while (i < w.size()) {
        const size_t k = std::min<size_t>(w.size() - i, 1 + g() % 1448);
        in.append(chain({w.substr(i, k)}));
        i += k;
        r = p.parse(in, req, err);
        if (i < w.size()) {
            ASSERT_EQ(r, Parse::need_more);
            ++need_more;
        }
    }
    ASSERT_EQ(r, Parse::ok);
    EXPECT_GT(need_more, 100);
    ASSERT_EQ(req.args.size(), 3u);
    EXPECT_EQ(req.args[0].sv(), "PUBLISH");
    EXPECT_EQ(req.args[2].sv(), payload);
    const Arg& a = req.args[2];
    rte_mbuf* c = in.clone(a.off, a.len + 2, unit_pool());
    ASSERT_NE(c, nullptr);
    EXPECT_GT(c->nb_segs, 100);
    EXPECT_EQ(flatten(c), payload + "\r\n");
    in.consume(req.total);
    EXPECT_EQ(in.size(), 0u);
    EXPECT_EQ(flatten(c), payload + "\r\n");
    rte_pktmbuf_free(c);
    EXPECT_TRUE(pool_full());
}

// reset() forgets a partly parsed request.
TEST(RespParse, ResetForgetsPartialRequest) {
    InBuf in;
    RequestParser p;
    Request req;
    std::string_view err;
    in.append(chain({"*3\r\n$3\r\nfoo\r\n"}));
    EXPECT_EQ(p.parse(in, req, err), Parse::need_more);
    p.reset();
    in.clear();
    in.append(chain({"*1\r\n$4\r\nPING\r\n"}));
    ASSERT_EQ(p.parse(in, req, err), Parse::ok);
    ASSERT_EQ(req.args.size(), 1u);
    EXPECT_EQ(req.args[0].sv(), "PING");
    in.clear();
    EXPECT_TRUE(pool_full());
}

TEST(RespParse, EmptyInputNeedsMore) {
    InBuf in;
    RequestParser p;
    Request req;
    std::string_view err;
    EXPECT_EQ(p.parse(in, req, err), Parse::need_more);
    EXPECT_TRUE(pool_full());
}

// --- multibulk errors ------------------------------------------------------------------------

// An error after valid requests: those are parsed first, then the error, under every cut.
void check_error(const std::string& prefix_req, const std::string& bad, const std::string& error,
                 RequestParser::Limits lim = {}, uint32_t max_piece = 4) {
    SCOPED_TRACE(testing::Message() << "input " << testing::PrintToString(bad));
    Stream s;
    if (!prefix_req.empty()) s.mb({prefix_req});
    s.wire += bad;
    s.error = error;
    check_cuts(s, 60, max_piece, lim);
}

TEST(RespErr, InvalidMultibulkLength) {
    const std::string e = "-ERR Protocol error: invalid multibulk length\r\n";
    for (const char* bad : {"*abc\r\n", "*+1\r\n", "*01\r\n", "* 1\r\n", "*1 \r\n", "*\r\n",
                            "*-0\r\n", "*1048577\r\n", "*99999999999999999999\r\n"})
        check_error("PING", bad, e);
    // At the limit: fine (the arguments do not follow: more is needed).
    Stream s;
    s.wire = "*1048576\r\n";
    check_cuts(s, 5, 3, {}, uint32_t(s.wire.size()));
    EXPECT_TRUE(pool_full());
}

TEST(RespErr, MaxArgsFromLimits) {
    RequestParser::Limits lim;
    lim.max_args = 3;
    Stream s;
    s.mb({"a", "b", "c"});
    check_cuts(s, 20, 3, lim);
    check_error("x", Stream::multibulk({"a", "b", "c", "d"}),
                "-ERR Protocol error: invalid multibulk length\r\n", lim);
    EXPECT_TRUE(pool_full());
}

// No '\r' within max_inline + 1 bytes of the count line: too big.
TEST(RespErr, TooBigMbulkCountString) {
    RequestParser::Limits lim;
    lim.max_inline = 16;
    check_error("PING", "*" + std::string(16, '1'),
                "-ERR Protocol error: too big mbulk count string\r\n", lim);
    // 16 bytes without '\r' is not yet too big.
    Stream s;
    s.mb({"PING"});
    s.wire += "*" + std::string(15, '1');
    check_cuts(s, 20, 3, lim, 16);
    // A '\r' at offset 16 is in time: then it is the number that is wrong.
    check_error("PING", "*" + std::string(15, '1') + "\r\n",
                "-ERR Protocol error: invalid multibulk length\r\n", lim);
    EXPECT_TRUE(pool_full());
}

TEST(RespErr, ExpectedDollar) {
    check_error("PING", "*2\r\n$3\r\nfoo\r\n:5\r\n",
                "-ERR Protocol error: expected '$', got ':'\r\n");
    check_error("PING", "*1\r\nPING\r\n", "-ERR Protocol error: expected '$', got 'P'\r\n");
    // Redis maps CR and LF in an error to spaces...
    check_error("PING", "*1\r\n\r\n", "-ERR Protocol error: expected '$', got ' '\r\n");
    check_error("PING", "*1\r\n\n\r\n", "-ERR Protocol error: expected '$', got ' '\r\n");
    // ...and its formatting stops at a NUL.
    check_error("PING", std::string("*1\r\n\0\r\n", 7),
                "-ERR Protocol error: expected '$', got '\r\n");
    EXPECT_TRUE(pool_full());
}

// The '$' check waits for the header line's '\r' (and the byte after it), as Redis's does.
TEST(RespErr, ErrorShowsOnlyWhenItsLineIsComplete) {
    InBuf in;
    RequestParser p;
    Request req;
    std::string_view err;
    for (const char* part : {"*1\r\n", "$", "x", "y\r"}) {
        in.append(chain({part}));
        EXPECT_EQ(p.parse(in, req, err), Parse::need_more) << part;
    }
    in.append(chain({"\n"}));
    ASSERT_EQ(p.parse(in, req, err), Parse::error);
    EXPECT_EQ(err, "-ERR Protocol error: invalid bulk length\r\n");
    in.clear();
    p.reset();
    for (const char* part : {"*2\r\n$1\r\na\r\n", ":", "1"}) {
        in.append(chain({part}));
        EXPECT_EQ(p.parse(in, req, err), Parse::need_more) << part;
    }
    in.append(chain({"\r", "\n"}));
    ASSERT_EQ(p.parse(in, req, err), Parse::error);
    EXPECT_EQ(err, "-ERR Protocol error: expected '$', got ':'\r\n");
    in.clear();
    EXPECT_TRUE(pool_full());
}

TEST(RespErr, InvalidBulkLength) {
    const std::string e = "-ERR Protocol error: invalid bulk length\r\n";
    for (const char* bad : {"*1\r\n$-1\r\n", "*1\r\n$abc\r\n", "*1\r\n$ 3\r\nabc\r\n",
                            "*1\r\n$\r\n", "*1\r\n$+3\r\nabc\r\n", "*1\r\n$03\r\nabc\r\n",
                            "*1\r\n$536870913\r\n", "*2\r\n$1\r\na\r\n$-5\r\n"})
        check_error("PING", bad, e);
    EXPECT_TRUE(pool_full());
}

TEST(RespErr, MaxBulkFromLimits) {
    RequestParser::Limits lim;
    lim.max_bulk = 5;
    Stream s;
    s.mb({"12345", ""});
    check_cuts(s, 20, 3, lim);
    check_error("x", Stream::multibulk({"123456"}), "-ERR Protocol error: invalid bulk length\r\n",
                lim);
    EXPECT_TRUE(pool_full());
}

TEST(RespErr, TooBigBulkCountString) {
    RequestParser::Limits lim;
    lim.max_inline = 16;
    check_error("PING", "*1\r\n$" + std::string(16, '1'),
                "-ERR Protocol error: too big bulk count string\r\n", lim);
    // Counted from the header line's start, not the request's.
    Stream s;
    s.mb({"PING"});
    s.wire += "*1\r\n$" + std::string(15, '1');
    check_cuts(s, 20, 3, lim, 20);
    EXPECT_TRUE(pool_full());
}

// Each error is a complete error line (the broker sends it and closes).
TEST(RespErr, ErrorLinesAreCompleteResp) {
    RequestParser::Limits lim;
    lim.max_inline = 8;
    for (const char* bad : {"*x\r\n", "*1\r\n?\r\n", "*1\r\n$x\r\n", "\"abc\r\n", "aaaaaaaaaaaa",
                            "*1111111111", "*1\r\n$1111111111"}) {
        InBuf in;
        in.append(chain({bad}));
        RequestParser p(lim);
        Request req;
        std::string_view err;
        ASSERT_EQ(p.parse(in, req, err), Parse::error) << bad;
        ASSERT_GE(err.size(), 7u);
        EXPECT_EQ(err.substr(0, 5), "-ERR ") << bad;
        EXPECT_EQ(err.substr(err.size() - 2), "\r\n") << bad;
        EXPECT_EQ(err.find_first_of("\r\n"), err.size() - 2) << bad;
    }
    EXPECT_TRUE(pool_full());
}

// --- inline ----------------------------------------------------------------------------------

// Whitespace separated; a '\r' before the '\n' is dropped; leading blanks (isspace, \v and \f
// included) are skipped, but inside an unquoted argument only space, tab, CR and LF end it.
TEST(RespInline, SplitsOnWhitespace) {
    Stream s;
    s.inl("set foo bar\r\n", {"set", "foo", "bar"});
    s.inl("  a \t b\t\tc  \r\n", {"a", "b", "c"});
    s.inl("PING\n", {"PING"});
    s.inl("PING\r\r\n", {"PING"});
    s.inl("\v\fx\vy z\n", {"x\vy", "z"});
    s.inl("a\rb\n", {"a", "b"});
    check_cuts(s, 100, 4);
    EXPECT_TRUE(pool_full());
}

// An empty line (or blanks only) is no request: ok, no arguments, consumed.
TEST(RespInline, EmptyLineIsSkipped) {
    Stream s;
    s.inl("\r\n", {});
    s.inl("\n", {});
    s.inl("  \t \r\n", {});
    s.inl("PING\r\n", {"PING"});
    check_cuts(s, 50, 3);
    EXPECT_TRUE(pool_full());
}

// Double quotes: \n \r \t \b \a \xHH and any other escaped character as itself.
TEST(RespInline, DoubleQuoteEscapes) {
    Stream s;
    s.inl("SET \"hello world\" x\r\n", {"SET", "hello world", "x"});
    s.inl("\"a\\nb\\rc\\td\\be\\af\"\n", {"a\nb\rc\td\be\af"});
    s.inl("\"\\x41\\x4a\\x4A\\x00\\xff\\x4G\"\n", {std::string("AJJ\0\xff", 5) + "x4G"});
    s.inl("\"q\\\"uote\\\\\" \"\\z\"\n", {"q\"uote\\", "z"});
    s.inl("\"\" ''\n", {"", ""});
    s.inl("\"a b\"\t\"c\"\n", {"a b", "c"});
    check_cuts(s, 100, 5);
    EXPECT_TRUE(pool_full());
}

// Single quotes: only \' is an escape.
TEST(RespInline, SingleQuotes) {
    Stream s;
    s.inl("'it\\'s' 'a\\\\b' 'x\\ny' ' sp '\n", {"it's", "a\\\\b", "x\\ny", " sp "});
    s.inl("'\"' \"'\"\n", {"\"", "'"});
    check_cuts(s, 100, 5);
    EXPECT_TRUE(pool_full());
}

// A quote in the middle of an argument starts quoting there.
TEST(RespInline, QuoteInsideArgument) {
    Stream s;
    s.inl("foo\"bar baz\" x'y z'\n", {"foobar baz", "xy z"});
    check_cuts(s, 50, 5);
    EXPECT_TRUE(pool_full());
}

TEST(RespInline, UnbalancedQuotes) {
    const std::string e = "-ERR Protocol error: unbalanced quotes in request\r\n";
    for (const char* bad : {"\"abc\r\n", "'abc\n", "\"abc\"def\r\n", "'a'b\n", "x \"abc\\\"\n",
                            "\"\\\n", "'it\\'\n", "\"a\"\"b\"\n"})
        check_error("PING", bad, e);
    EXPECT_TRUE(pool_full());
}

// No '\n' within max_inline + 1 bytes: too big.
TEST(RespInline, TooBigInlineRequest) {
    RequestParser::Limits lim;
    lim.max_inline = 16;
    const std::string e = "-ERR Protocol error: too big inline request\r\n";
    check_error("PING", std::string(17, 'a'), e, lim);
    check_error("PING", std::string(16, 'a') + "\r\n", e, lim);
    Stream s;
    s.mb({"PING"});
    s.inl(std::string(15, 'a') + "\r\n", {std::string(15, 'a')});
    s.inl(std::string(16, 'b') + "\n", {std::string(16, 'b')});
    s.wire += std::string(16, 'c');  // not yet too big
    check_cuts(s, 50, 5, lim, 16);
    EXPECT_TRUE(pool_full());
}

// Random inline commands (plain, double-quoted with escapes, single-quoted) in a pipeline
// with multibulk requests.
TEST(RespInline, RandomCommandsMixedWithMultibulk) {
    std::mt19937 g(4242);
    const std::string alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    auto sep = [&] { return std::string(1 + g() % 3, g() % 2 ? ' ' : '\t'); };
    for (int round = 0; round < 10; ++round) {
        Stream s;
        for (int i = 0; i < 30; ++i) {
            if (g() % 3 == 0) {
                s.mb({bytes(g, g() % 10), bytes(g, g() % 40)});
                continue;
            }
            std::string line = g() % 4 == 0 ? sep() : "";
            Strings args;
            const uint32_t n = g() % 5;
            for (uint32_t t = 0; t < n; ++t) {
                std::string arg;
                const uint32_t kind = g() % 3;
                if (kind == 0) {
                    for (uint32_t k = 1 + g() % 8; k; --k) arg += alnum[g() % alnum.size()];
                    line += arg;
                } else if (kind == 1) {
                    line += '"';
                    for (uint32_t k = g() % 10; k; --k) {
                        const char c = char(g());
                        arg += c;
                        if (alnum.find(c) != std::string::npos && c != 0) {
                            line += c;
                        } else if (c == '\n') {
                            line += "\\n";
                        } else if (c == '"') {
                            line += "\\\"";
                        } else {
                            static const char* hex = "0123456789abcdef";
                            line += "\\x";
                            line += hex[uint8_t(c) >> 4];
                            line += hex[uint8_t(c) & 15];
                        }
                    }
                    line += '"';
                } else {
                    line += '\'';
                    for (uint32_t k = g() % 10; k; --k) {
                        const uint32_t r = g() % 10;
                        if (r == 0) {
                            arg += '\'';
                            line += "\\'";
                        } else if (r == 1) {
                            arg += ' ';
                            line += ' ';
                        } else {
                            const char c = alnum[g() % alnum.size()];
                            arg += c;
                            line += c;
                        }
                    }
                    line += '\'';
                }
                args.push_back(arg);
                if (t + 1 < n || g() % 3 == 0) line += sep();
            }
            line += g() % 2 ? "\r\n" : "\n";
            s.inl(line, args);
        }
        SCOPED_TRACE(round);
        check_cuts(s, 30, 1 + g() % 60);
    }
    EXPECT_TRUE(pool_full());
}

// An inline line over several segments is copied once; its arguments have no InBuf offset.
TEST(RespInline, LineAcrossSegments) {
    InBuf in;
    in.append(chain({"PUB", "LISH ch", "an \"hel", "lo\"\r", "\n"}));
    RequestParser p;
    Request req;
    std::string_view err;
    ASSERT_EQ(p.parse(in, req, err), Parse::ok);
    EXPECT_TRUE(req.is_inline);
    ASSERT_EQ(req.args.size(), 3u);
    EXPECT_EQ(req.args[0].sv(), "PUBLISH");
    EXPECT_EQ(req.args[1].sv(), "chan");
    EXPECT_EQ(req.args[2].sv(), "hello");
    for (const Arg& a : req.args) EXPECT_EQ(a.off, kNoOffset);
    EXPECT_EQ(req.total, in.size());
    in.consume(req.total);
    EXPECT_TRUE(pool_full());
}

// --- OutBuf ----------------------------------------------------------------------------------

// A pipeline of 1000 PONGs packs into as few mbufs as the bytes need.
TEST(RespOutBuf, PacksSmallRepliesIntoTheTail) {
    OutBuf ob(unit_pool());
    std::string want;
    for (int i = 0; i < 1000; ++i) {
        ASSERT_TRUE(ob.simple("PONG"));
        want += "+PONG\r\n";
    }
    EXPECT_EQ(ob.size(), 7000u);
    EXPECT_EQ(ob.mbufs(), (7000 + room() - 1) / room());
    rte_mbuf* m = ob.take();
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(ob.empty());
    EXPECT_EQ(ob.size(), 0u);
    EXPECT_EQ(ob.mbufs(), 0u);
    EXPECT_EQ(flatten(m), want);
    rte_pktmbuf_free(m);
    EXPECT_TRUE(pool_full());
}

// A put larger than an mbuf spans fresh ones; what follows packs into the last.
TEST(RespOutBuf, LargePutSpansMbufs) {
    std::mt19937 g(3);
    const std::string big = bytes(g, 2 * room() + 100);
    OutBuf ob(unit_pool());
    ASSERT_TRUE(ob.put("ab", 2));
    ASSERT_TRUE(ob.put(big.data(), uint32_t(big.size())));
    EXPECT_EQ(ob.mbufs(), 3u) << "the first mbuf's room is used too";
    ASSERT_TRUE(ob.bulk("tail"));
    EXPECT_EQ(ob.mbufs(), 3u);
    rte_mbuf* m = ob.take();
    EXPECT_EQ(flatten(m), "ab" + big + "$4\r\ntail\r\n");
    rte_pktmbuf_free(m);
    EXPECT_TRUE(ob.put("", 0)) << "nothing to add";
    EXPECT_TRUE(ob.empty());
    EXPECT_TRUE(pool_full());
}

// Sizes around mbuf boundaries, after a tail filled to different levels: exactly as many
// mbufs as the bytes need, and the bytes in order.
TEST(RespOutBuf, PutSizesAroundMbufBoundaries) {
    const uint32_t r = room();
    std::mt19937 g(5);
    for (uint32_t fill : {0u, 1u, r / 2, r - 1, r}) {
        for (uint32_t len : {1u, r - 1, r, r + 1, 2 * r - 1, 2 * r, 2 * r + 1, 3 * r + 1}) {
            SCOPED_TRACE(testing::Message() << "fill " << fill << " len " << len);
            OutBuf ob(unit_pool());
            const std::string a = bytes(g, fill);
            const std::string b = bytes(g, len);
            ASSERT_TRUE(ob.put(a.data(), fill));
            ASSERT_TRUE(ob.put(b.data(), len));
            EXPECT_EQ(ob.mbufs(), (fill + len + r - 1) / r);
            EXPECT_EQ(ob.size(), fill + len);
            rte_mbuf* m = ob.take();
            EXPECT_EQ(flatten(m), a + b);
            rte_pktmbuf_free(m);
        }
    }
    EXPECT_TRUE(pool_full());
}

// A chain appended by reference is never written into: the next reply starts a new mbuf.
TEST(RespOutBuf, ChainByReferenceIsNotWrittenTo) {
    OutBuf ob(unit_pool());
    ASSERT_TRUE(ob.simple("A"));
    rte_mbuf* c = chain({"frame-", "payload"});
    rte_mbuf* c_last = c->next;
    ob.put_chain(c);
    EXPECT_EQ(ob.mbufs(), 3u);
    EXPECT_EQ(ob.size(), 4u + 13u);
    ASSERT_TRUE(ob.simple("B"));
    EXPECT_EQ(ob.mbufs(), 4u);
    EXPECT_EQ(c_last->data_len, 7u);
    ob.put_chain(nullptr);
    EXPECT_EQ(ob.mbufs(), 4u);
    rte_mbuf* m = ob.take();
    EXPECT_EQ(flatten(m), "+A\r\nframe-payload+B\r\n");
    // After take(), new replies go to new mbufs (not into what was taken).
    ASSERT_TRUE(ob.simple("C"));
    EXPECT_EQ(ob.mbufs(), 1u);
    EXPECT_EQ(flatten(m), "+A\r\nframe-payload+B\r\n");
    rte_pktmbuf_free(m);
    ob.clear();
    EXPECT_TRUE(ob.empty());
    EXPECT_TRUE(pool_full());
}

// put_frame: a frame that does not fit the tail whole starts a fresh mbuf of the pack pool;
// without pack mbufs (none left, or a frame larger than they are) it is put() as any reply.
TEST(RespOutBuf, PutFramePacksWholeFramesIntoPackMbufs) {
    rte_mempool* pack =
        rte_pktmbuf_pool_create("ut_pack", 3, 0, 0, uint16_t(RTE_PKTMBUF_HEADROOM + 100), 0);
    ASSERT_NE(pack, nullptr);
    {
        OutBuf ob(unit_pool());
        ob.set_pack_pool(pack);
        std::string want;
        std::string f(30, 'x');
        for (int i = 0; i < 10; ++i) {
            f[0] = char('0' + i);
            ASSERT_TRUE(ob.put_frame(f.data(), uint32_t(f.size())));
            want += f;
        }
        // Three frames to each 100-byte pack mbuf; the tenth finds the pack pool empty.
        EXPECT_EQ(rte_mempool_avail_count(pack), 0u);
        EXPECT_EQ(ob.mbufs(), 4u);
        ASSERT_TRUE(ob.simple("A"));  // a reply: into the plain tail
        want += "+A\r\n";
        EXPECT_EQ(ob.mbufs(), 4u);
        EXPECT_EQ(ob.size(), want.size());
        rte_mbuf* m = ob.take();
        std::vector<uint16_t> pack_lens;
        for (rte_mbuf* s2 = m; s2; s2 = s2->next)
            if (s2->pool == pack) pack_lens.push_back(s2->data_len);
        // Whole frames; the tenth, put() as any reply, fills the last one's room first.
        EXPECT_EQ(pack_lens, (std::vector<uint16_t>{90, 90, 100}));
        EXPECT_EQ(flatten(m), want);
        rte_pktmbuf_free(m);
        EXPECT_EQ(rte_mempool_avail_count(pack), 3u);

        // A frame that fits the tail joins it, whatever pool the tail is from.
        ASSERT_TRUE(ob.simple("B"));
        ASSERT_TRUE(ob.put_frame(f.data(), uint32_t(f.size())));
        EXPECT_EQ(ob.mbufs(), 1u);
        EXPECT_EQ(rte_mempool_avail_count(pack), 3u);
        m = ob.take();
        EXPECT_EQ(flatten(m), "+B\r\n" + f);
        rte_pktmbuf_free(m);
        f.assign(30, 'x');

        // Pack pool dry: frames still go out, in plain mbufs.
        rte_mbuf* hold[3];
        ASSERT_EQ(rte_pktmbuf_alloc_bulk(pack, hold, 3), 0);
        want.clear();
        for (int i = 0; i < 20; ++i) {
            ASSERT_TRUE(ob.put_frame(f.data(), uint32_t(f.size())));
            want += f;
        }
        m = ob.take();
        EXPECT_EQ(flatten(m), want);
        for (rte_mbuf* s2 = m; s2; s2 = s2->next) EXPECT_NE(s2->pool, pack);
        rte_pktmbuf_free(m);
        rte_pktmbuf_free_bulk(hold, 3);

        // A frame larger than a pack mbuf: plain mbufs.
        const std::string big(150, 'b');
        ASSERT_TRUE(ob.put_frame(big.data(), uint32_t(big.size())));
        m = ob.take();
        EXPECT_EQ(flatten(m), big);
        for (rte_mbuf* s2 = m; s2; s2 = s2->next) EXPECT_NE(s2->pool, pack);
        rte_pktmbuf_free(m);
    }
    EXPECT_EQ(rte_mempool_avail_count(pack), 3u);
    rte_mempool_free(pack);
    EXPECT_TRUE(pool_full());
}

// put_packed copies a run of frames split anywhere: the tail's room first, then pack mbufs
// filled to their room, all or nothing; without pack mbufs (dry, or more than it takes at
// once) as put().
TEST(RespOutBuf, PutPackedFillsTheTailThenWholePackMbufs) {
    rte_mempool* pack =
        rte_pktmbuf_pool_create("ut_pack2", 40, 0, 0, uint16_t(RTE_PKTMBUF_HEADROOM + 100), 0);
    ASSERT_NE(pack, nullptr);
    auto bytes = [](size_t n, char c) {
        std::string r;
        for (size_t i = 0; i < n; ++i) r += char(c + i % 7);
        return r;
    };
    auto pack_lens = [&](const rte_mbuf* m) {
        std::vector<uint16_t> lens;
        for (const rte_mbuf* x = m; x; x = x->next)
            lens.push_back(x->pool == pack ? x->data_len : uint16_t(10000 + x->data_len));
        return lens;
    };
    {
        OutBuf ob(unit_pool());
        ob.set_pack_pool(pack);
        // Into an empty buffer: 250 bytes over three pack mbufs.
        std::string want = bytes(250, 'a');
        ASSERT_TRUE(ob.put_packed(want.data(), uint32_t(want.size())));
        EXPECT_EQ(rte_mempool_avail_count(pack), 37u);
        // 50 bytes of the last one's room left: 30 fit whole, then 70 = 50 there + 20 fresh.
        const std::string b = bytes(30, 'b'), c = bytes(70, 'c');
        ASSERT_TRUE(ob.put_packed(b.data(), uint32_t(b.size())));
        ASSERT_TRUE(ob.put_packed(c.data(), uint32_t(c.size())));
        want += b + c;
        EXPECT_EQ(ob.size(), want.size());
        EXPECT_EQ(ob.mbufs(), 4u);
        rte_mbuf* m = ob.take();
        EXPECT_EQ(pack_lens(m), (std::vector<uint16_t>{100, 100, 100, 50}));
        EXPECT_EQ(flatten(m), want);
        rte_pktmbuf_free(m);

        // After a reply in a plain mbuf: its room first (room() bytes), then pack mbufs.
        ASSERT_TRUE(ob.simple("R"));
        const std::string d = bytes(room() - 4 + 120, 'd');
        ASSERT_TRUE(ob.put_packed(d.data(), uint32_t(d.size())));
        m = ob.take();
        EXPECT_EQ(pack_lens(m), (std::vector<uint16_t>{uint16_t(10000 + room()), 100, 20}));
        EXPECT_EQ(flatten(m), "+R\r\n" + d);
        rte_pktmbuf_free(m);
        EXPECT_EQ(rte_mempool_avail_count(pack), 40u);

        // More than 32 pack mbufs at once, or the pack pool short: plain mbufs.
        const std::string big = bytes(3300, 'e'), mid = bytes(450, 'f');
        ASSERT_TRUE(ob.put_packed(big.data(), uint32_t(big.size())));
        m = ob.take();
        for (rte_mbuf* x = m; x; x = x->next) EXPECT_NE(x->pool, pack);
        EXPECT_EQ(flatten(m), big);
        rte_pktmbuf_free(m);
        rte_mbuf* hold[36];
        ASSERT_EQ(rte_pktmbuf_alloc_bulk(pack, hold, 36), 0);  // 4 left, 5 needed
        ASSERT_TRUE(ob.put_packed(mid.data(), uint32_t(mid.size())));
        EXPECT_EQ(rte_mempool_avail_count(pack), 4u) << "all or nothing";
        m = ob.take();
        for (rte_mbuf* x = m; x; x = x->next) EXPECT_NE(x->pool, pack);
        EXPECT_EQ(flatten(m), mid);
        rte_pktmbuf_free(m);
        rte_pktmbuf_free_bulk(hold, 36);

        // Neither pool has the mbufs: false, nothing added.
        ASSERT_TRUE(ob.simple("S"));
        rte_mbuf* all[40];
        ASSERT_EQ(rte_pktmbuf_alloc_bulk(pack, all, 40), 0);
        const std::string over = bytes(room() + 50, 'g');
        {
            Drain dr(0);
            EXPECT_FALSE(ob.put_packed(over.data(), uint32_t(over.size())));
            EXPECT_EQ(ob.size(), 4u);
            EXPECT_EQ(ob.mbufs(), 1u);
        }
        rte_pktmbuf_free_bulk(all, 40);
        ob.clear();
    }
    EXPECT_EQ(rte_mempool_avail_count(pack), 40u);
    rte_mempool_free(pack);
    EXPECT_TRUE(pool_full());
}

TEST(RespOutBuf, TakeFrontLeavesTheRest) {
    OutBuf ob(unit_pool());
    EXPECT_EQ(ob.take(), nullptr);
    EXPECT_EQ(ob.take_front(3), nullptr);
    ob.put_chain(chain({"a", "bb", "ccc"}));
    ob.put_chain(chain({"dddd", "eeeee"}));
    rte_mbuf* m = ob.take_front(2);
    EXPECT_EQ(flatten(m), "abb");
    EXPECT_EQ(ob.mbufs(), 3u);
    EXPECT_EQ(ob.size(), 12u);
    rte_mbuf* rest = ob.take_front(100);
    EXPECT_EQ(flatten(rest), "cccddddeeeee");
    EXPECT_TRUE(ob.empty());
    rte_pktmbuf_free(m);
    rte_pktmbuf_free(rest);
    EXPECT_TRUE(pool_full());
}

// A chain that TCP refused goes back in front of what came since, counted again; the next
// take() hands over everything in the original order.
TEST(RespOutBuf, UnshiftPutsARefusedChainBackInFront) {
    OutBuf ob(unit_pool());
    ob.put_chain(chain({"a", "bb"}));
    rte_mbuf* m = ob.take();
    EXPECT_TRUE(ob.empty());
    ASSERT_TRUE(ob.simple("x"));  // written after the take
    ob.unshift(m);
    EXPECT_EQ(ob.mbufs(), 3u);
    EXPECT_EQ(ob.size(), 3u + 4u);
    ASSERT_TRUE(ob.simple("y"));  // still appends at the tail
    rte_mbuf* all = ob.take();
    EXPECT_EQ(flatten(all), "abb+x\r\n+y\r\n");
    rte_pktmbuf_free(all);
    // Into an empty buffer: the chain's last mbuf becomes the tail (nothing copied into it).
    ob.put_chain(chain({"cc"}));
    m = ob.take();
    ob.unshift(m);
    ASSERT_TRUE(ob.simple("z"));
    all = ob.take();
    EXPECT_EQ(flatten(all), "cc+z\r\n");
    EXPECT_EQ(all->nb_segs, 2);
    rte_pktmbuf_free(all);
    EXPECT_TRUE(pool_full());
}

// Out of mbufs: nothing is added (no partial reply), and what fits the tail still goes.
TEST(RespOutBuf, AllOrNothingWhenPoolRunsOut) {
    OutBuf ob(unit_pool());
    ASSERT_TRUE(ob.simple("first"));
    const std::string big(2 * room(), 'x');
    const std::string huge(50 * room(), 'h');
    {
        Drain d(40);
        ASSERT_EQ(avail(), 40u);
        // 50 mbufs: the first 32 are taken, the next 18 are not there: the 32 go back.
        EXPECT_FALSE(ob.put(huge.data(), uint32_t(huge.size())));
        EXPECT_EQ(avail(), 40u);
        EXPECT_EQ(ob.size(), 8u);
    }
    {
        Drain d(1);
        ASSERT_EQ(avail(), 1u);
        EXPECT_FALSE(ob.put(big.data(), uint32_t(big.size()))) << "needs two more mbufs";
        EXPECT_FALSE(ob.bulk(big));
        EXPECT_EQ(ob.size(), 8u);
        EXPECT_EQ(ob.mbufs(), 1u);
        EXPECT_EQ(avail(), 1u);
        EXPECT_TRUE(ob.simple("fits")) << "room in the tail: no mbuf needed";
        EXPECT_TRUE(ob.bulk(std::string(room(), 'y'))) << "one more mbuf";
        EXPECT_EQ(avail(), 0u);
        EXPECT_EQ(ob.mbufs(), 2u);
        const uint32_t size = ob.size();
        EXPECT_FALSE(ob.bulk(std::string(room(), 'z')));
        EXPECT_EQ(ob.size(), size);
        EXPECT_EQ(ob.mbufs(), 2u);
        EXPECT_TRUE(ob.integer(1234567890123)) << "still fits the tail";
    }
    rte_mbuf* m = ob.take();
    EXPECT_EQ(flatten(m), "+first\r\n+fits\r\n$" + std::to_string(room()) + "\r\n" +
                              std::string(room(), 'y') + "\r\n:1234567890123\r\n");
    rte_pktmbuf_free(m);
    EXPECT_TRUE(pool_full());
}

TEST(RespOutBuf, NoPoolNoOutput) {
    OutBuf ob;
    EXPECT_FALSE(ob.simple("x"));
    EXPECT_TRUE(ob.empty());
    ob.set_pool(unit_pool());
    EXPECT_TRUE(ob.simple("x"));
    ob.clear();
    EXPECT_TRUE(pool_full());
}

std::string encoded(const std::function<bool(OutBuf&)>& f) {
    OutBuf ob(unit_pool());
    EXPECT_TRUE(f(ob));
    rte_mbuf* m = ob.take();
    std::string s = flatten(m);
    rte_pktmbuf_free(m);
    return s;
}

TEST(RespEncode, Resp2Bytes) {
    EXPECT_EQ(encoded([](OutBuf& o) { return o.simple("OK"); }), "+OK\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.error("ERR unknown command"); }),
              "-ERR unknown command\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.integer(0); }), ":0\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.integer(-42); }), ":-42\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.integer(INT64_MAX); }), ":9223372036854775807\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.integer(INT64_MIN); }), ":-9223372036854775808\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.bulk(""); }), "$0\r\n\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.bulk("a\r\nb"); }), "$4\r\na\r\nb\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.null(2); }), "$-1\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.null_array(2); }), "*-1\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.array(0); }), "*0\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.array(3); }), "*3\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.push(3, 2); }), "*3\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.map(2, 2); }), "*4\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.set(5, 2); }), "*5\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.map(4000000000u, 2); }), "*8000000000\r\n");
    EXPECT_TRUE(pool_full());
}

TEST(RespEncode, Resp3Bytes) {
    EXPECT_EQ(encoded([](OutBuf& o) { return o.null(3); }), "_\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.null_array(3); }), "_\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.push(3, 3); }), ">3\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.map(2, 3); }), "%2\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.set(5, 3); }), "~5\r\n");
    EXPECT_EQ(encoded([](OutBuf& o) { return o.array(12); }), "*12\r\n");
    EXPECT_TRUE(pool_full());
}

// A subscribe confirmation as the broker writes it, RESP2 and RESP3.
TEST(RespEncode, SubscribeReplySequence) {
    auto reply = [](int resp) {
        return encoded([resp](OutBuf& o) {
            return o.push(3, resp) && o.bulk("subscribe") && o.bulk("news") && o.integer(1);
        });
    };
    EXPECT_EQ(reply(2), "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    EXPECT_EQ(reply(3), ">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    EXPECT_TRUE(pool_full());
}

// --- pub/sub frame headers -------------------------------------------------------------------

TEST(RespFrame, MessageHeader) {
    char buf[128];
    uint32_t n = message_header(buf, sizeof buf, 2, "message", "foo", 5);
    EXPECT_EQ(std::string(buf, n), "*3\r\n$7\r\nmessage\r\n$3\r\nfoo\r\n$5\r\n");
    EXPECT_EQ(n, message_header_size("message", "foo", 5));
    n = message_header(buf, sizeof buf, 3, "message", "foo", 5);
    EXPECT_EQ(std::string(buf, n), ">3\r\n$7\r\nmessage\r\n$3\r\nfoo\r\n$5\r\n");
    n = message_header(buf, sizeof buf, 2, "smessage", "", 1234567);
    EXPECT_EQ(std::string(buf, n), "*3\r\n$8\r\nsmessage\r\n$0\r\n\r\n$1234567\r\n");
    EXPECT_EQ(n, message_header_size("smessage", "", 1234567));
    // cap: exactly enough, or one short.
    const uint32_t need = message_header_size("message", "chan", 0);
    EXPECT_EQ(message_header(buf, need, 2, "message", "chan", 0), need);
    EXPECT_EQ(std::string(buf, need), "*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$0\r\n");
    EXPECT_EQ(message_header(buf, need - 1, 2, "message", "chan", 0), 0u);
}

TEST(RespFrame, PmessageHeader) {
    char buf[128];
    uint32_t n = pmessage_header(buf, sizeof buf, 2, "f*", "foo", 11);
    EXPECT_EQ(std::string(buf, n), "*4\r\n$8\r\npmessage\r\n$2\r\nf*\r\n$3\r\nfoo\r\n$11\r\n");
    EXPECT_EQ(n, pmessage_header_size("f*", "foo", 11));
    n = pmessage_header(buf, sizeof buf, 3, "f*", "foo", 11);
    EXPECT_EQ(std::string(buf, n), ">4\r\n$8\r\npmessage\r\n$2\r\nf*\r\n$3\r\nfoo\r\n$11\r\n");
    EXPECT_EQ(pmessage_header(buf, n - 1, 3, "f*", "foo", 11), 0u);
    EXPECT_EQ(pmessage_header(buf, n, 3, "f*", "foo", 11), n);
}

// The fan-out path end to end: a PUBLISH parsed from mbufs, its payload cloned with its CRLF,
// a frame header packed into the subscriber's OutBuf, the clone appended by reference: the
// subscriber receives a well-formed message (it parses back as a 3-element multibulk).
TEST(RespFrame, HeaderPlusCloneIsAMessage) {
    std::mt19937 g(11);
    const std::string payload = bytes(g, 5000);
    const std::string w = Stream::multibulk({"PUBLISH", "news", payload});
    InBuf in;
    in.append(chain(pieces(w, 1448)));
    RequestParser p;
    Request req;
    std::string_view err;
    ASSERT_EQ(p.parse(in, req, err), Parse::ok);
    const Arg& a = req.args[2];
    OutBuf ob(unit_pool());
    ASSERT_TRUE(ob.simple("OK"));
    char hdr[64];
    const uint32_t n = message_header(hdr, sizeof hdr, 2, "message", req.args[1].sv(), a.len);
    ASSERT_GT(n, 0u);
    ASSERT_TRUE(ob.put(hdr, n));
    EXPECT_EQ(ob.mbufs(), 1u) << "the header packed behind the earlier reply";
    rte_mbuf* c = in.clone(a.off, a.len + 2, unit_pool());
    ASSERT_NE(c, nullptr);
    ob.put_chain(c);
    in.consume(req.total);
    rte_mbuf* out = ob.take();
    const std::string got = flatten(out);
    EXPECT_EQ(got, "+OK\r\n" + Stream::multibulk({"message", "news", payload}));
    // Parse it back (less the +OK).
    InBuf back;
    back.append(chain(pieces(got.substr(5), room())));
    rte_pktmbuf_free(out);
    ASSERT_EQ(p.parse(back, req, err), Parse::ok);
    ASSERT_EQ(req.args.size(), 3u);
    EXPECT_EQ(req.args[0].sv(), "message");
    EXPECT_EQ(req.args[2].sv(), payload);
    back.consume(req.total);
    EXPECT_TRUE(pool_full());
}

}  // namespace
}  // namespace sluice::apps::broker
