// The RESP front end of sluice-broker: a connection's unparsed input (InBuf: the mbuf chains
// TCP handed over, zero copy), the request parser (RequestParser: multibulk and inline
// requests, as Redis's networking.c parses them, incrementally), a connection's pending output
// (OutBuf: small replies copied into mbufs, fan-out frames appended by reference) and the reply
// encoders for RESP2 and RESP3.
//
// Nothing here allocates per request: the buffers (InBuf's segment list, the parser's argument
// vector and arena, Request::args) are per connection, reused, and grow rarely.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include <rte_mbuf.h>
#include <rte_mempool.h>

namespace sluice::apps::broker {

// A connection's received, not yet consumed bytes: the mbuf chains TCP handed over (zero copy).
// The chains are split into their segments on append (zero-length segments are freed at once)
// and kept in a list indexed by stream offset, so that any offset is found in O(1) for
// sequential access (a hint: the last segment found) and O(log segments) otherwise.
class InBuf {
  public:
    InBuf() = default;
    InBuf(const InBuf&) = delete;
    InBuf& operator=(const InBuf&) = delete;
    ~InBuf();  // frees what it holds

    void append(rte_mbuf* chain);  // takes ownership; pkt_len bytes (zero-length segments allowed)
    // Past kCoalesceAbove held segments (a long request arriving), append() copies what arrives
    // into big buffers (kBigBuf bytes, rte_malloc'd, attached as external buffers to mbufs from
    // `pool`) and frees the received mbufs at once: a request of many megabytes holds a few
    // big buffers rather than thousands of the port's receive mbufs. nullptr: never (default).
    void set_coalesce_pool(rte_mempool* pool) { big_pool_ = pool; }
    static constexpr uint32_t kCoalesceAbove = 64;
    static constexpr uint16_t kBigBuf = 65024;  // with the buffer's shared info at its end
    uint32_t size() const { return uint32_t(end_ - base_); }  // unconsumed bytes
    void consume(uint32_t n);  // drops n bytes from the front, freeing mbufs wholly consumed
    void clear();
    uint8_t at(uint32_t off) const;  // byte at offset from the front (off < size())
    void copy(uint32_t off, uint32_t len, void* dst) const;
    // Pointer to [off, off+len) if it lies inside one mbuf segment, else nullptr. A zero-length
    // range gives a valid (empty) pointer.
    const char* contiguous(uint32_t off, uint32_t len) const;
    // The bytes from `off` to the end of the segment holding it: returns their start and sets
    // `avail` to their count (off < size()).
    const char* span(uint32_t off, uint32_t& avail) const;
    // Zero copy: a chain of indirect mbufs (rte_pktmbuf_attach; from `pool`) over [off, off+len),
    // one per segment it spans; nb_segs/pkt_len set. nullptr (nothing leaked) when out of mbufs.
    // len 0: one empty direct mbuf.
    rte_mbuf* clone(uint32_t off, uint32_t len, rte_mempool* pool) const;
    // Offset of the first "\r\n" at or after `from` whose '\r' is before `limit` (the '\n' may
    // be at `limit`; both must be held), or -1.
    int64_t find_crlf(uint32_t from, uint32_t limit) const;
    // Offset of the first byte `c` in [from, limit) (limit clipped to size()), or -1.
    int64_t find(uint8_t c, uint32_t from, uint32_t limit) const;
    uint32_t segments() const { return uint32_t(segs_.size() - first_); }  // mbufs held
    // Of those, the received mbufs held as they came (not copied into big buffers).
    uint32_t received_segments() const { return rx_segs_; }

  private:
    struct Seg {
        const char* data;  // the segment's first byte
        uint32_t len;      // its data_len (never 0)
        uint64_t start;    // stream offset of its first byte
        rte_mbuf* m;
        bool big;  // a big buffer (set_coalesce_pool), not a received mbuf
    };
    void free_seg(const Seg& s) {
        if (!s.big) rx_segs_--;
        rte_pktmbuf_free_seg(s.m);
    }
    uint32_t rx_segs_ = 0;
    // Index of the segment holding stream offset `a` (base_ <= a < end_).
    size_t locate(uint64_t a) const;

    // A fresh big buffer (an mbuf from big_pool_ attached to kBigBuf rte_malloc'd bytes), or
    // nullptr when out of memory.
    rte_mbuf* new_big() const;

    std::vector<Seg> segs_;  // [first_, size): held; the front ones are dropped lazily
    rte_mempool* big_pool_ = nullptr;
    bool tail_big_ = false;  // the last segment is a big buffer append() may write more into
    size_t first_ = 0;
    uint64_t base_ = 0;  // stream offset of the first unconsumed byte
    uint64_t end_ = 0;   // stream offset past the last byte
    mutable size_t hint_ = 0;
};

// Arg::off of an inline request's arguments: they are unescaped copies, not InBuf bytes.
inline constexpr uint32_t kNoOffset = UINT32_MAX;

struct Arg {
    const char* p;  // the argument's bytes, contiguous: inside an mbuf, or in the parser's arena
    uint32_t len;
    uint32_t
        off;  // multibulk: offset of the payload in the InBuf (for InBuf::clone); inline: kNoOffset
    std::string_view sv() const { return {p, len}; }
};

struct Request {
    std::vector<Arg> args;  // reused between requests (capacity kept)
    uint32_t total = 0;     // the request's length in the InBuf: consume(total) after executing it
    bool is_inline = false;
};

enum class Parse : uint8_t { need_more, ok, error };

// Redis's string2ll (util.c): an optional '-', then digits; no '+', no spaces, no leading zero
// except "0" itself ("-0" is refused), fewer than 21 characters, fits in int64.
bool string2ll(const char* s, size_t len, int64_t* out);

// RequestParser::Limits (outside the class so that it can be a default argument there).
struct ParserLimits {
    uint32_t max_inline = 64 * 1024;   // Redis PROTO_INLINE_MAX_SIZE
    uint64_t max_bulk = 512ull << 20;  // proto-max-bulk-len
    uint32_t max_args = 1024 * 1024;   // Redis: multibulk length > 1024*1024 is an error
};

class RequestParser {
  public:
    using Limits = ParserLimits;
    explicit RequestParser(Limits l = {});
    RequestParser(const RequestParser&) = delete;
    RequestParser& operator=(const RequestParser&) = delete;

    // Parses the request at the front of `in` (bytes before it were consumed). ok: `req` filled
    // (its args swapped with the parser's: no copy). need_more: incomplete; call again when
    // more bytes arrived: the state is kept, so a request arriving in many segments is scanned
    // once (O(total) overall). error: `err` is the complete RESP error line to send; Redis then
    // closes the connection. After ok or error the parser is ready for the next request.
    // Argument pointers stay valid until the next parse() or until the InBuf is consumed.
    Parse parse(const InBuf& in, Request& req, std::string_view& err);
    void reset();  // forgets a partly parsed request (after ok or error it is already done)
    const Limits& limits() const { return lim_; }

  private:
    enum class State : uint8_t { start, inline_line, mb_count, mb_bulk_header, mb_payload };

    // The common case in one pass over a pointer: a whole multibulk request of 1-9 arguments
    // in the `n` bytes at `p` (the InBuf's first segment), every length plain digits. false:
    // anything else (nothing changed): the state machine below parses it, as it would this.
    bool parse_fast(const char* p, uint32_t n, Request& req);
    Parse parse_inline(const InBuf& in, Request& req, std::string_view& err);
    Parse parse_multibulk(const InBuf& in, Request& req, std::string_view& err);
    // The first '\r' of the line starting at pos_ (searching on from scan_), within the
    // max_inline + 1 bytes Redis lets a line have before it complains: its offset, -1 when more
    // bytes are needed (its '\n' byte included), -2 when the line is too long.
    int64_t line_end(const InBuf& in);
    Parse finish_multibulk(const InBuf& in, Request& req);
    Parse fail(std::string_view e, std::string_view& err);

    Limits lim_;
    State st_ = State::start;
    uint32_t pos_ = 0;   // next byte to parse
    uint32_t scan_ = 0;  // where the search for the current line's end goes on
    uint32_t left_ = 0;  // multibulk: arguments still to come
    uint64_t bulk_ = 0;  // multibulk: the current argument's length
    std::vector<Arg> args_;
    std::vector<char> arena_;  // arguments that span segments; inline arguments
    std::vector<char> line_;   // an inline line that spans segments
    char errbuf_[64];
};

// A connection's pending output: replies copied into mbufs (from `pool`), fan-out frames
// appended by reference. Small replies are packed into the tail mbuf while it has room (only
// into mbufs this buffer filled itself: a chain appended by reference is never written to).
class OutBuf {
  public:
    explicit OutBuf(rte_mempool* pool = nullptr);
    OutBuf(const OutBuf&) = delete;
    OutBuf& operator=(const OutBuf&) = delete;
    ~OutBuf();
    void set_pool(rte_mempool* pool);
    // Large mbufs (about an MSS of data room) that put_frame packs whole frames into, so that
    // TCP can send them by reference instead of copying small pieces; nullptr: none.
    void set_pack_pool(rte_mempool* pack);

    // Copies; all or nothing (false: out of mbufs). Inline: what fits the tail mbuf.
    bool put(const void* data, uint32_t len) {
        if (append_if_fits(data, len)) return true;
        const std::string_view part(static_cast<const char*>(data), len);
        return putv(&part, 1);
    }
    // Copies several pieces, all or nothing.
    bool putv(const std::string_view* parts, uint32_t n);
    // Copies one message frame: into the tail mbuf if it fits whole, else into a fresh mbuf of
    // the pack pool; without one (none left, or the frame is larger than they are) as put().
    bool put_frame(const void* data, uint32_t len) {
        return append_if_fits(data, len) || put_frame_fresh(data, len);
    }
    // Copies a run of frames, split anywhere: what fits into the tail mbuf, the rest into
    // fresh mbufs of the pack pool, filled; without them as put(). All or nothing.
    bool put_packed(const void* data, uint32_t len) {
        return append_if_fits(data, len) || put_packed_fresh(data, len);
    }
    void put_chain(rte_mbuf* m);  // appends a chain by reference (takes ownership)
    // Puts a chain that take() or take_front() gave back in front (TCP refused it: kept for
    // the next try, ahead of everything since).
    void unshift(rte_mbuf* m);
    // Everything so far as one chain (nb_segs, pkt_len right), or nullptr; empty after. A chain
    // counts at most UINT16_MAX segments (nb_segs): beyond that, take() gives the first
    // UINT16_MAX and leaves the rest for the next call (take_front(UINT16_MAX)).
    rte_mbuf* take();
    // The first min(mbufs(), max_segs) segments as one chain (max_segs >= 1), or nullptr when
    // empty; the rest stays.
    rte_mbuf* take_front(uint32_t max_segs);
    uint32_t size() const { return size_; }   // bytes held
    uint32_t mbufs() const { return segs_; }  // segments held
    bool empty() const { return head_ == nullptr; }
    void clear();  // frees

    // RESP encoders (all copy; all-or-nothing; return false when out of mbufs). resp = 2 or 3.
    bool simple(std::string_view s);  // +s\r\n
    bool error(std::string_view s);   // -s\r\n  (s without the '-')
    bool integer(int64_t v);          // :v\r\n
    bool bulk(std::string_view s);    // $len\r\ns\r\n
    bool null(int resp);              // RESP2 $-1\r\n (null bulk), RESP3 _\r\n
    bool null_array(int resp);        // RESP2 *-1\r\n, RESP3 _\r\n
    bool array(uint32_t n);           // *n\r\n
    bool push(uint32_t n, int resp);  // RESP3 >n\r\n, RESP2 *n\r\n (pub/sub frames)
    bool map(uint32_t n, int resp);   // RESP3 %n\r\n, RESP2 *2n\r\n
    bool set(uint32_t n, int resp);   // RESP3 ~n\r\n, RESP2 *n\r\n

  private:
    bool header(char type, uint64_t n);  // <type>n\r\n
    void append_tail(const void* data, uint32_t len) {
        memcpy(rte_pktmbuf_mtod_offset(tail_, char*, tail_->data_len), data, len);
        tail_->data_len = uint16_t(tail_->data_len + len);
        tail_->pkt_len += len;
        size_ += len;
    }
    // Copies into the tail mbuf when all of it fits there (false: nothing done).
    bool append_if_fits(const void* data, uint32_t len) {
        if (!tail_own_ || len > rte_pktmbuf_tailroom(tail_) || uint64_t(size_) + len > UINT32_MAX)
            return false;
        append_tail(data, len);
        return true;
    }
    // Appends an empty fresh mbuf of ours as the new tail, which more may be copied into.
    void link_fresh(rte_mbuf* m) {
        if (tail_)
            tail_->next = m;
        else
            head_ = m;
        tail_ = m;
        tail_own_ = true;
        segs_++;
    }
    bool put_frame_fresh(const void* data, uint32_t len);
    bool put_packed_fresh(const void* data, uint32_t len);

    rte_mempool* pool_ = nullptr;
    uint32_t room_ = 0;  // data room of a fresh mbuf of pool_ (after the headroom)
    rte_mempool* pack_ = nullptr;
    uint32_t pack_room_ = 0;
    rte_mbuf* head_ = nullptr;
    rte_mbuf* tail_ = nullptr;
    uint32_t size_ = 0;
    uint32_t segs_ = 0;
    bool tail_own_ = false;  // tail_ was filled by put(): more may be copied into it
};

// The header of a pub/sub message frame, formatted into dst:
//   *3\r\n$<k>\r\n<kind>\r\n$<c>\r\n<channel>\r\n$<n>\r\n    (RESP3: >3 instead of *3)
// kind is "message" or "smessage"; the payload's n bytes and their CRLF follow (the clone).
// Returns the bytes written, or 0 when cap is too small.
uint32_t message_header(char* dst, uint32_t cap, int resp, std::string_view kind,
                        std::string_view channel, uint32_t payload_len);
// *4\r\n$8\r\npmessage\r\n$<p>\r\n<pattern>\r\n$<c>\r\n<channel>\r\n$<n>\r\n  (RESP3: >4)
uint32_t pmessage_header(char* dst, uint32_t cap, int resp, std::string_view pattern,
                         std::string_view channel, uint32_t payload_len);
// Their exact lengths (to size dst).
uint32_t message_header_size(std::string_view kind, std::string_view channel, uint32_t payload_len);
uint32_t pmessage_header_size(std::string_view pattern, std::string_view channel,
                              uint32_t payload_len);

}  // namespace sluice::apps::broker
