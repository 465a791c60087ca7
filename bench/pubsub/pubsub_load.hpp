// The transport-independent core of the pub/sub load generators (bench/PUBSUB_PERF.md):
// linux-pubsub-load (Linux sockets, epoll) and sluice-pubsub-load (Sluice's TCP) drive any RESP
// broker (redis-server, sluice-broker) with the same workload and print the same line.
//
// Workload: one publisher connection and N subscriber connections. Each subscriber sends
// SUBSCRIBE <channel> as soon as it is connected; the measurement starts once all N+1 are
// connected and all N confirmations are in. The publisher then pipelines
// `PUBLISH <channel> <payload>` (RESP multibulk), at most `window` of them without their reply
// and at most `lag` messages ahead of the slowest subscriber (a message counts once every
// subscriber has it): the broker's queues toward the subscribers stay bounded, so the latency
// measured is that of a loaded, not an ever more backlogged, broker. Each payload is `size`
// bytes: the publisher's clock when the command was queued (8 bytes), the sequence number
// (8 bytes), then filler. Publishing stops `duration` seconds after it started; then the core
// waits (at most `drain_s`) for the replies and deliveries still on their way, so that every
// message can be accounted for.
//
// Subscribers parse `*3 $7 message $<channel> $<size> <payload>` frames (and the subscribe
// confirmations, and RESP3 pushes `>3 ...`) incrementally, from any segmentation: a whole frame
// in one buffer is matched against the expected header in one comparison; a frame that the
// buffer cuts is matched once its header and first 16 payload bytes are in (a small stash per
// connection) and the rest of it skipped; anything else goes through a byte-level RESP reader
// that keeps a few dozen bytes per connection.
// Per subscriber the sequence numbers must arrive in order: a jump forward counts the skipped
// messages as lost, a step back as reordered (both must be 0). The publish-to-delivery time of
// every message delivered within the window goes into a log-linear histogram (no allocation).
//
// Output (report()): one line on stdout,
//   pubsub: subs=N size=P published=X delivered=Y seconds=D delivered_per_s=R p50_us=A
//           p99_us=B lost=L reordered=O
// (one line), where delivered counts the deliveries that arrived within the `duration` window
// and published the PUBLISH commands sent (all within it), and a `pubsub: detail ...` line on
// stderr (window, lag, p99.9, max, replies, drain, errors).
//
// The transport (one thread, any number of connections) calls, with its own clock (`now` in
// ticks of `hz` per second: CLOCK_MONOTONIC ns, or the TSC):
//   init(cfg, hz, now)                once; false: bad configuration (error())
//   hello(id)                         bytes to send when connection `id` is established
//   on_connected(id, now)             connection `id` (0: publisher, 1..N: subscribers) is up
//   on_data(id, bytes, len, now)      received bytes, any segmentation
//   on_closed(id, why)                the connection ended (an error unless done())
//   tick(now)                         every loop: phase changes, deadlines
//   fill_publishes(out, cap, now)     publisher: as many PUBLISH commands as allowed and fit
//   done(), report(), exit_code()
// Nothing is allocated after init().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <algorithm>
#include <cstring>
#include <vector>

namespace sluice::bench {

// Log-linear histogram of non-negative integers (clock ticks here), HdrHistogram's layout:
// values below 2^kSubBits each have their bucket; above, every power of two is split into
// 2^kSubBits buckets (relative width 1/64: < 1.6% error). Values from 2^kMaxBits (~18 min in
// ns, ~7 min in 2.5 GHz TSC ticks) on share the last bucket.
class LatencyHistogram {
  public:
    static constexpr unsigned kSubBits = 6;
    static constexpr unsigned kMaxBits = 40;
    static constexpr unsigned kBuckets = (kMaxBits - kSubBits + 1) << kSubBits;

    // Consecutive values in one bucket (a message reaching many subscribers in one chunk) are
    // counted in a register and added once: incrementing the same counter back to back waits
    // on the previous store each time.
    void record(uint64_t v) {
        const unsigned i = index(v);
        if (i != last_) {
            counts_[last_] += run_;
            n_ += run_;
            last_ = i;
            run_ = 0;
        }
        run_++;
        if (v > max_) max_ = v;
    }
    void clear();
    uint64_t count() const { return n_ + run_; }
    uint64_t max() const { return max_; }
    // The smallest bucket bound below which a fraction q (0..1) of the values lie: the upper
    // bound of the bucket holding the value of rank ceil(q * count), at most max(). 0 if empty.
    uint64_t percentile(double q) const;

    static unsigned index(uint64_t v) {
        if (v < (uint64_t(1) << kSubBits)) return unsigned(v);
        unsigned e = 63u - unsigned(__builtin_clzll(v));  // v in [2^e, 2^(e+1))
        if (e >= kMaxBits) return kBuckets - 1;
        const unsigned shift = e - kSubBits;
        return ((shift + 1) << kSubBits) + unsigned((v >> shift) & ((1u << kSubBits) - 1));
    }
    // Largest value that falls into bucket i.
    static uint64_t upper_bound(unsigned i);

  private:
    uint64_t counts_[kBuckets] = {};
    uint64_t n_ = 0, max_ = 0;  // n_: values in counts_ (run_ more are in bucket last_)
    unsigned last_ = 0;
    uint64_t run_ = 0;
};

// Incremental reader of a RESP2/RESP3 reply stream, as much of it as a pub/sub client sees:
// top-level simple values (+ - : _ # , ( and the like, and $ bulk strings) and arrays or
// pushes (* >) of up to kMaxElems elements that are themselves simple values or bulk strings.
// Of each bulk string it keeps the length and the first kHead bytes; element 1 of an array is
// also compared with `match` (the channel). A complete top-level value is a Frame.
class RespReader {
  public:
    static constexpr unsigned kMaxElems = 4;
    static constexpr unsigned kHead = 16;
    static constexpr unsigned kLine = 40;  // kept of a header or simple-value line

    struct Elem {
        char type;         // '$' bulk, ':' integer, '+' '-' simple, '_' null, ...
        bool matches;      // element 1: equals `match`
        uint8_t head_len;  // bytes of head[] filled
        int64_t num;       // bulk: length (-1: null); integer: value
        uint8_t head[kHead];
    };
    struct Frame {
        char type;  // '*' / '>' (array, push) or the type of a top-level simple value
        uint8_t n;  // elements (arrays)
        Elem e[kMaxElems];
        const char* line;  // top-level simple value: its text (without type and CRLF)
        unsigned line_len;
    };

    void set_match(std::string_view m) { match_ = m; }
    bool at_boundary() const { return st_ == St::line && line_len_ == 0 && !in_array_; }
    // Consumes bytes until a frame completes (frame_ready(): frame() is valid until the next
    // call) or the input ends. Returns the bytes consumed; on a protocol error sets error()
    // (a static string) and consumes nothing more.
    size_t step(const uint8_t* p, size_t n);
    bool frame_ready() const { return ready_; }
    const Frame& frame() const { return f_; }
    const char* error() const { return err_; }

  private:
    enum class St : uint8_t { line, bulk, bulk_cr, bulk_lf };
    bool end_line();  // a complete header/simple line in line_[]
    void begin_elem(char type);
    bool finish_elem();  // the current element is complete; true if the frame is
    bool fail(const char* why) {
        err_ = why;
        return false;
    }

    std::string_view match_;
    St st_ = St::line;
    bool ready_ = false;
    bool in_array_ = false;
    bool line_cr_ = false;  // line_: saw '\r'
    uint8_t idx_ = 0;       // current element
    unsigned line_len_ = 0;
    unsigned line_total_ = 0;  // including what did not fit in line_
    int64_t bulk_left_ = 0;
    int64_t bulk_off_ = 0;
    const char* err_ = nullptr;
    char line_[kLine];
    Frame f_{};
};

struct PubSubConfig {
    uint32_t subs = 1;
    uint32_t size = 16;     // payload bytes, >= 16 (timestamp + sequence number)
    double duration_s = 5;  // publishing window
    uint32_t window = 64;   // PUBLISH commands without their reply
    uint32_t lag = 0;       // messages not yet at every subscriber; 0: = window
    std::string channel = "sluice-bench";
    double setup_s = 30;  // connect + subscribe, at most
    double drain_s = 10;  // after the window: the rest of the replies and deliveries
};

class PubSubLoad {
  public:
    static constexpr uint32_t kPublisher = 0;
    static constexpr uint32_t kMinSize = 16;
    static constexpr uint32_t kMaxSize = 1u << 20;
    static constexpr uint32_t kMaxSubs = 100000;
    static constexpr uint32_t kMaxWindow = 1u << 16;
    static constexpr size_t kMaxChannel = 128;

    enum class Phase { setup, measuring, draining, done };

    bool init(const PubSubConfig& cfg, uint64_t hz, uint64_t now);
    const PubSubConfig& config() const { return cfg_; }
    uint32_t conns() const { return cfg_.subs + 1; }
    Phase phase() const { return phase_; }
    bool done() const { return phase_ == Phase::done; }
    bool publishing() const { return phase_ == Phase::measuring; }
    // The bytes of one PUBLISH command (what fill_publishes writes per message).
    size_t publish_len() const { return pub_tmpl_.size(); }

    std::string_view hello(uint32_t id) const;
    void on_connected(uint32_t id, uint64_t now);
    bool on_data(uint32_t id, const uint8_t* p, size_t n, uint64_t now);
    void on_closed(uint32_t id, const char* why);
    void tick(uint64_t now);
    // Writes as many whole PUBLISH commands as the window, the lag bound and cap allow.
    // Returns the bytes written (0 outside the measurement window).
    size_t fill_publishes(uint8_t* out, size_t cap, uint64_t now);
    // Stops the run with an error (the transport's: a connect failure, a signal).
    void fail(const char* what, const char* detail = nullptr);

    void report(FILE* line_out, FILE* detail_out) const;
    int exit_code() const;
    const std::string& error() const { return error_; }
    uint64_t delivered() const { return delivered_; }
    uint64_t lost() const;
    uint64_t reordered() const;

  private:
    // A message frame is known by its first id_len_ bytes (the header and the payload's
    // timestamp and sequence number); the bytes of a frame that a chunk cuts before that wait
    // in `stash`, and the rest of one whose start has been matched is skipped (`skip`).
    static constexpr size_t kStash = kMaxChannel + 64;
    struct Sub {
        RespReader rd;          // frames the fast path does not take, from their first byte
        uint64_t next_seq = 0;  // the sequence number expected next
        uint64_t received = 0;  // message frames
        uint64_t lost = 0, reordered = 0;
        uint32_t skip = 0;  // bytes of a matched message frame still to come (CRLF included)
        uint16_t stash_len = 0;
        bool connected = false, subscribed = false;
        uint8_t stash[kStash];
    };

    bool sub_data(uint32_t id, Sub& s, const uint8_t* p, size_t n, uint64_t now);
    bool sub_step(uint32_t id, Sub& s, const uint8_t*& p, size_t& n, uint64_t now);
    bool sub_slow(uint32_t id, Sub& s, const uint8_t* p, size_t n, uint64_t now);
    bool sub_skip(uint32_t id, Sub& s, const uint8_t*& p, size_t& n);
    bool pub_data(const uint8_t* p, size_t n);
    bool sub_frame(uint32_t id, Sub& s, const RespReader::Frame& f, uint64_t now);
    bool message(Sub& s, uint64_t ts, uint64_t seq, uint64_t now);
    void account(uint64_t seq);  // one more subscriber has (or has lost) message seq
    void maybe_drained(uint64_t now);

    PubSubConfig cfg_;
    uint64_t hz_ = 1;
    double ns_per_tick_ = 1;
    double us(uint64_t ticks) const { return double(ticks) * ns_per_tick_ / 1e3; }
    Phase phase_ = Phase::setup;
    std::string subscribe_cmd_;
    std::string pub_tmpl_;  // one PUBLISH command; payload at pub_payload_off_
    size_t pub_payload_off_ = 0;
    std::string msg_hdr_;  // a delivered message's frame up to its payload
    size_t msg_frame_len_ = 0;
    std::string reply_;      // the publisher's expected reply: ":<subs>\r\n"
    size_t id_len_ = 0;      // msg_hdr_ + timestamp + sequence number
    std::vector<Sub> subs_;  // [0] unused (the publisher)
    RespReader pub_rd_;
    std::vector<uint32_t> have_;  // per sequence number (mod size): subscribers that have it
    uint64_t have_mask_ = 0;

    uint64_t t_setup_end_ = 0, t0_ = 0, t_end_ = 0, t_drain_end_ = 0, t_done_ = 0;
    uint64_t t_stop_ = 0;  // end of the measured window (t_end_, or an earlier failure)
    uint64_t t_last_ = 0;  // the latest `now` seen
    uint32_t connected_ = 0, subscribed_ = 0;
    bool pub_connected_ = false;
    bool started_ = false;    // the measurement window began
    uint64_t published_ = 0;  // sequence numbers 0 .. published_-1
    uint64_t replies_ = 0, reply_mismatch_ = 0;
    uint64_t all_have_ = 0;  // messages 0 .. all_have_-1 reached (or were lost by) every sub
    uint64_t delivered_ = 0, late_ = 0;  // within the window; after it
    bool drained_ = false;
    LatencyHistogram hist_;
    std::string error_;
};

// The publisher's unsent bytes, [head, tail) of one buffer sized for a window of commands
// (at most 8 MiB, at least one), refilled from the core by either transport.
class PublishBuffer {
  public:
    void size_for(const PubSubLoad& core, uint32_t window) {
        const size_t len = core.publish_len();
        buf_.resize(std::max<size_t>(len, std::min<size_t>(size_t(8) << 20, len * window)));
    }
    // Moves what is unsent to the front when a command would not fit, then takes as many
    // PUBLISH commands as the core allows.
    void refill(PubSubLoad& core, uint64_t now) {
        if (head_ == tail_) head_ = tail_ = 0;
        if (!core.publishing()) return;
        if (buf_.size() - tail_ < core.publish_len() && head_ > 0) {
            memmove(buf_.data(), buf_.data() + head_, tail_ - head_);
            tail_ -= head_;
            head_ = 0;
        }
        tail_ += core.fill_publishes(buf_.data() + tail_, buf_.size() - tail_, now);
    }
    const uint8_t* data() const { return buf_.data() + head_; }
    size_t size() const { return tail_ - head_; }
    void consume(size_t n) { head_ += n; }

  private:
    std::vector<uint8_t> buf_;
    size_t head_ = 0, tail_ = 0;
};

}  // namespace sluice::bench
