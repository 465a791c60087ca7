// libFuzzer target for sluice-broker's RESP front end (apps/broker/resp.hpp): the input is a
// byte stream a client sent, fed to an InBuf + RequestParser the way Broker::process does:
// cut into mbufs (zero-length and 1-byte segments included, data at varying offsets, one to
// four segments per delivery) at points derived from the input, each delivery parsed as it
// "arrives": every complete pipelined request is taken (ok), checked and consumed, until the
// parser needs more bytes or reports a protocol error (then the rest is dropped, as the broker
// closes the connection).
//
// Input: 4 control bytes, then the stream.
//   c0 bits 0-1  limits: Redis's defaults (0, 3), small (1), tiny, from c1 (2)
//      bits 2-3  clones: none (0), every other argument (1), all (2), all with their CRLF (3)
//      bits 4-7  the longest segment: 1 .. 2040 bytes (kMaxSeg)
//   c1, c2, c3   the seed of the cuts (and c1 the tiny limits)
//
// Per request: every argument's bytes are read (ASan sees any bad pointer) and compared with
// the InBuf's bytes at its offset (multibulk); some are clone()d (indirect mbufs, freed after
// the request was consumed: the clones must still read the same bytes); the arguments go back
// out through an OutBuf (bulk replies, a message header and a clone by reference, as a fan-out
// frame); now and then the request is parsed a second time after reset() (the broker does that
// when a command waits for resources) and must come out the same. The whole run is repeated
// with the stream in as few segments as possible: the requests, their lengths and the error
// must not depend on the cuts. At the end every mbuf is back in its pool (abort otherwise).
//
//   CXX=clang++ meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined
//       -Db_lundef=false -Dtests=false -Dbenchmarks=false   (one line)
//   ninja -C build-fuzz tests/fuzz/sluice-resp-fuzz
//   build-fuzz/tests/fuzz/sluice-resp-fuzz -max_total_time=120 tests/fuzz/corpus_resp
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "apps/broker/resp.hpp"
#include "tests/fuzz/fuzz_eal.hpp"

namespace {

using namespace sluice::apps::broker;

constexpr uint32_t kMaxSeg = 2040;  // leaves room to shift the data by up to 7 bytes
constexpr uint32_t kSegLimits[16] = {1,  2,  3,  4,   5,   7,   8,    13,
                                     16, 31, 64, 100, 256, 512, 1460, kMaxSeg};

rte_mempool* g_pool;   // received segments, OutBuf copies (the broker: the stack's pool)
rte_mempool* g_small;  // clones (indirect mbufs) and frame headers (the broker: small_pool)

bool init() {
    g_pool = sluice::fuzz::init_eal_and_pool();
    g_small = rte_pktmbuf_pool_create("fuzz_small", 8191, 0, 0, 256 + RTE_PKTMBUF_HEADROOM, 0);
    if (!g_small) abort();
    return true;
}

void check(bool ok) {
    if (!ok) abort();
}

// xorshift32 (never seeded with 0).
struct Rng {
    uint32_t s;
    uint32_t next() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        return s;
    }
};

// A chain of one mbuf per piece of data[at, at + lens[i]) (zero-length pieces included), each
// piece's data shifted by 0..7 bytes; nullptr when the pool is empty.
rte_mbuf* make_chain(const uint8_t* data, const std::vector<uint32_t>& lens, Rng& rng) {
    rte_mbuf* head = nullptr;
    rte_mbuf* tail = nullptr;
    uint32_t total = 0;
    for (uint32_t len : lens) {
        rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
        if (!m) {
            if (head) rte_pktmbuf_free(head);
            return nullptr;
        }
        const uint16_t shift = uint16_t(rng.next() & 7);
        if (shift) {
            check(rte_pktmbuf_append(m, shift) != nullptr);
            check(rte_pktmbuf_adj(m, shift) != nullptr);
        }
        if (len) {
            char* p = rte_pktmbuf_append(m, uint16_t(len));
            check(p != nullptr);
            memcpy(p, data, len);
            data += len;
        }
        if (tail)
            tail->next = m;
        else
            head = m;
        tail = m;
        total += len;
    }
    if (head) {
        head->nb_segs = uint16_t(lens.size());
        head->pkt_len = total;
    }
    return head;
}

// The bytes of a chain; checks nb_segs and pkt_len.
std::string flatten(const rte_mbuf* m) {
    std::string s;
    uint32_t n = 0;
    for (const rte_mbuf* x = m; x; x = x->next, ++n)
        s.append(rte_pktmbuf_mtod(x, const char*), x->data_len);
    check(m == nullptr || (m->nb_segs == n && m->pkt_len == s.size()));
    return s;
}

// Redis's string2ll, written the obvious way (the reference for string2ll).
bool ref_string2ll(std::string_view s, int64_t* out) {
    if (s.empty() || s.size() >= 21) return false;
    if (s == "0") {
        *out = 0;
        return true;
    }
    const bool neg = s[0] == '-';
    const std::string_view d = s.substr(neg ? 1 : 0);
    if (d.empty() || d[0] < '1' || d[0] > '9') return false;
    __int128 v = 0;
    for (char c : d) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    if (neg) v = -v;
    if (v < INT64_MIN || v > INT64_MAX) return false;
    *out = int64_t(v);
    return true;
}

// InBuf::find_crlf over what `in` holds, against a plain search of its bytes.
void check_find_crlf(const InBuf& in, const std::string& bytes, uint32_t from, uint32_t limit) {
    int64_t want = -1;
    for (uint64_t i = from; i < limit && i < bytes.size(); ++i)
        if (bytes[i] == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n') {
            want = int64_t(i);
            break;
        }
    check(in.find_crlf(from, limit) == want);
}

void put_u32(std::string& log, uint32_t v) {
    log.append(reinterpret_cast<const char*>(&v), sizeof v);
}

struct Pass {
    RequestParser::Limits lim;
    unsigned clones = 0;           // c0 bits 2-3
    uint32_t max_seg = kMaxSeg;    // longest piece
    bool fewest_segments = false;  // the differential pass: kMaxSeg pieces, one per delivery
    uint32_t seed = 1;
};

// One request taken: its arguments checked, cloned, echoed. Appends it to `log`.
void take(const InBuf& in, const Request& req, const Pass& ps, Rng& rng, OutBuf& out,
          std::vector<std::pair<rte_mbuf*, std::string>>& clones, std::string& log) {
    check(req.total > 0 && req.total <= in.size());  // progress, inside what was received
    log += req.is_inline ? 'I' : 'M';
    put_u32(log, req.total);
    put_u32(log, uint32_t(req.args.size()));
    uint32_t sum = 0;
    for (size_t i = 0; i < req.args.size(); ++i) {
        const Arg& a = req.args[i];
        check(a.len == 0 || a.p != nullptr);
        for (uint32_t k = 0; k < a.len; ++k) sum += uint8_t(a.p[k]);  // every byte read
        int64_t v = 0, w = 0;
        const bool is_num = string2ll(a.p, a.len, &v);
        check(is_num == ref_string2ll(a.sv(), &w) && (!is_num || v == w));
        put_u32(log, a.len);
        log.append(a.p ? a.p : "", a.len);
        if (req.is_inline) {
            check(a.off == kNoOffset);
            continue;
        }
        // A multibulk argument: its offset names the same bytes, followed by the two bytes
        // Redis skips, all inside the request.
        check(a.off != kNoOffset && uint64_t(a.off) + a.len + 2 <= req.total);
        std::string at(a.len, '\0');
        in.copy(a.off, a.len, at.data());
        check(at == std::string_view(a.p, a.len));
        const char* c = in.contiguous(a.off, a.len);
        check(c == nullptr || std::string_view(c, a.len) == at);
        if (a.len) {
            uint32_t avail = 0;
            const char* sp = in.span(a.off, avail);
            check(avail >= 1 && (c == nullptr) == (avail < a.len) &&
                  memcmp(sp, a.p, std::min(avail, a.len)) == 0);
        }
        const bool want = ps.clones >= 2 || (ps.clones == 1 && (i & 1));
        if (want && rte_mempool_avail_count(g_small) > 1024 + a.len) {
            const uint32_t len = a.len + (ps.clones == 3 ? 2 : 0);
            rte_mbuf* m = in.clone(a.off, len, g_small);
            if (m) {
                std::string bytes(len, '\0');
                in.copy(a.off, len, bytes.data());
                check(flatten(m) == bytes);
                clones.emplace_back(m, std::move(bytes));
            }
        }
    }
    // Where the CRLFs of the request are, from offsets the input picks.
    {
        std::string bytes(in.size(), '\0');
        in.copy(0, in.size(), bytes.data());
        check_find_crlf(in, bytes, 0, req.total);
        check_find_crlf(in, bytes, sum % (req.total + 1), req.total);
        check_find_crlf(in, bytes, rng.next() % (req.total + 1), in.size());
    }
    // The arguments back out as a reply (copied), and a fan-out frame (header + a clone).
    if (rte_mempool_avail_count(g_small) > 2048) {
        const int resp = 2 + int(rng.next() & 1);
        bool ok = out.array(uint32_t(req.args.size()));
        for (const Arg& a : req.args) {
            int64_t v = 0;
            switch (uint8_t(a.len ? a.p[0] : 0) % 8) {
                case 0:
                    ok = ok && out.simple(a.sv().substr(0, 64));
                    break;
                case 1:
                    ok = ok && out.error(a.sv().substr(0, 64));
                    break;
                case 2:
                    ok = ok && out.integer(string2ll(a.p, a.len, &v) ? v : -int64_t(sum));
                    break;
                case 3:
                    ok = ok && out.null(resp) && out.null_array(resp);
                    break;
                case 4:
                    ok =
                        ok && out.map(a.len, resp) && out.set(a.len, resp) && out.push(a.len, resp);
                    break;
                default:
                    ok = ok && out.bulk(a.sv());
                    break;
            }
        }
        if (!req.args.empty()) {
            char hdr[512];
            const std::string_view ch = req.args[0].sv();
            const uint32_t plen = req.args.back().len;
            const bool pm = rng.next() & 1;
            const uint32_t n = pm ? pmessage_header(hdr, sizeof hdr, resp, "p*", ch, plen)
                                  : message_header(hdr, sizeof hdr, resp, "message", ch, plen);
            const uint32_t want = pm ? pmessage_header_size("p*", ch, plen)
                                     : message_header_size("message", ch, plen);
            check(want > sizeof hdr ? n == 0 : n == want);
            ok = ok && out.put(hdr, n);
            if (ok && !clones.empty()) {
                rte_mbuf* ref = rte_pktmbuf_clone(clones.back().first, g_small);
                if (ref) out.put_chain(ref);
            }
        }
        const uint32_t size = out.size();
        const uint32_t segs = out.mbufs();
        rte_mbuf* m = rng.next() & 1 ? out.take() : out.take_front(1 + (rng.next() & 3));
        uint32_t got = 0, nsegs = 0;
        while (m) {
            got += m->pkt_len;
            nsegs += m->nb_segs;
            check(flatten(m).size() == m->pkt_len);
            rte_pktmbuf_free(m);
            m = out.take();
        }
        check(got == size && nsegs == segs && out.empty() && out.size() == 0);
        (void)ok;
    }
}

// Feeds the stream, parsing as Broker::process does; the log of what came out.
std::string run(const uint8_t* data, size_t size, const Pass& ps, bool* exhausted) {
    std::string log;
    Rng rng{ps.seed ? ps.seed : 1};
    InBuf in;
    RequestParser parser(ps.lim);
    Request req;
    OutBuf out(g_small);
    std::vector<std::pair<rte_mbuf*, std::string>> clones;
    size_t at = 0;
    bool done = false;
    while (!done && at < size) {
        // One delivery: one to four pieces (the last one may be cut short by the end).
        std::vector<uint32_t> lens;
        const unsigned pieces = ps.fewest_segments ? 1 : 1 + (rng.next() & 3);
        size_t len_total = 0;
        for (unsigned i = 0; i < pieces && at + len_total < size; ++i) {
            uint32_t len;
            if (ps.fewest_segments) {
                len = kMaxSeg;
            } else {
                const uint32_t r = rng.next() % 8;
                len = r == 0 ? 0 : r < 3 ? 1 : 1 + rng.next() % ps.max_seg;
            }
            len = uint32_t(std::min<size_t>(len, size - at - len_total));
            lens.push_back(len);
            len_total += len;
        }
        rte_mbuf* m = make_chain(data + at, lens, rng);
        if (!m) {  // the pool is out (a huge input): no comparison with the other pass
            *exhausted = true;
            break;
        }
        in.append(m);
        at += len_total;
        for (;;) {
            std::string_view err;
            const Parse r = parser.parse(in, req, err);
            if (r == Parse::need_more) break;
            if (r == Parse::error) {
                // A complete RESP error line; the broker answers it and drops the rest.
                check(err.size() >= 7 && err.substr(0, 5) == "-ERR " &&
                      err.substr(err.size() - 2) == "\r\n" && err.find('\n') == err.size() - 1);
                log += 'E';
                log.append(err);
                in.consume(in.size());
                parser.reset();
                done = true;
                break;
            }
            // Now and then, as when a command waits for mbufs: forget it, parse it again.
            if ((rng.next() & 7) == 0) {
                std::string first;
                take(in, req, Pass{}, rng, out, clones, first);
                parser.reset();
                std::string_view err2;
                check(parser.parse(in, req, err2) == Parse::ok);
                std::string again;
                take(in, req, Pass{}, rng, out, clones, again);
                check(first == again);
            }
            take(in, req, ps, rng, out, clones, log);
            in.consume(req.total);
            // The clones outlive the bytes they were taken from in the InBuf.
            for (auto& [c, bytes] : clones) {
                check(flatten(c) == bytes);
                rte_pktmbuf_free(c);
            }
            clones.clear();
        }
    }
    log += 'L';
    put_u32(log, in.size());
    return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static bool ready = init();
    (void)ready;
    if (size < 4) return 0;
    const uint8_t c0 = data[0], c1 = data[1], c2 = data[2], c3 = data[3];
    data += 4;
    size -= 4;
    Pass ps;
    switch (c0 & 3) {
        case 1:  // small
            ps.lim.max_inline = 32;
            ps.lim.max_bulk = 64;
            ps.lim.max_args = 8;
            break;
        case 2:  // tiny
            ps.lim.max_inline = 1 + (c1 & 31);
            ps.lim.max_bulk = (c1 >> 5) * 3;
            ps.lim.max_args = 1 + (c1 >> 6);
            break;
        default:
            break;
    }
    ps.clones = (c0 >> 2) & 3;
    ps.max_seg = kSegLimits[c0 >> 4];
    ps.seed = uint32_t(c1) << 16 | uint32_t(c2) << 8 | c3 | 1u << 24;
    bool exhausted = false;
    const std::string cut = run(data, size, ps, &exhausted);
    Pass whole = ps;
    whole.fewest_segments = true;
    const std::string same = run(data, size, whole, &exhausted);
    // The cuts change nothing: the same requests, the same error, the same bytes left.
    check(exhausted || cut == same);
    if (rte_mempool_in_use_count(g_pool) != 0 || rte_mempool_in_use_count(g_small) != 0) abort();
    return 0;
}
