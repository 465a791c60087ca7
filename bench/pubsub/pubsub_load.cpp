#include "bench/pubsub/pubsub_load.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstring>

namespace sluice::bench {

// ---------------------------------------------------------------------------------------------
// LatencyHistogram

void LatencyHistogram::clear() {
    std::fill(std::begin(counts_), std::end(counts_), uint64_t(0));
    n_ = max_ = run_ = 0;
    last_ = 0;
}

uint64_t LatencyHistogram::upper_bound(unsigned i) {
    if (i < (1u << kSubBits)) return i;
    const unsigned group = i >> kSubBits;  // >= 1: shift = group - 1
    const uint64_t sub = i & ((1u << kSubBits) - 1);
    const unsigned shift = group - 1;
    return (((uint64_t(1) << kSubBits) + sub + 1) << shift) - 1;
}

uint64_t LatencyHistogram::percentile(double q) const {
    const uint64_t n = count();
    if (n == 0) return 0;
    q = std::clamp(q, 0.0, 1.0);
    uint64_t rank = uint64_t(q * double(n) + 0.999999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    uint64_t seen = 0;
    for (unsigned i = 0; i < kBuckets; ++i) {
        seen += counts_[i] + (i == last_ ? run_ : 0);
        if (seen >= rank) return std::min(upper_bound(i), max_);
    }
    return max_;
}

// ---------------------------------------------------------------------------------------------
// RespReader

namespace {

// A RESP number: optional '-', 1..18 digits.
bool parse_num(const char* s, unsigned len, int64_t& out) {
    unsigned i = 0;
    bool neg = false;
    if (len > 0 && s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len || len - i > 18) return false;
    int64_t v = 0;
    for (; i < len; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = neg ? -v : v;
    return true;
}

constexpr int64_t kMaxBulk = int64_t(512) << 20;  // Redis's proto-max-bulk-len

}  // namespace

void RespReader::begin_elem(char type) {
    Elem& e = f_.e[idx_];
    e.type = type;
    e.matches = false;
    e.head_len = 0;
    e.num = 0;
}

bool RespReader::finish_elem() {
    if (++idx_ >= f_.n) {
        in_array_ = false;
        ready_ = true;
    }
    return true;
}

// line_ holds a complete line's first bytes (line_len_ of them; line_total_ - 2 in all).
bool RespReader::end_line() {
    const unsigned content = line_total_ - 2;  // without CRLF
    const bool truncated = content > kLine;
    const unsigned len = truncated ? kLine : content;
    if (len == 0) return fail("empty RESP line");
    const char t = line_[0];
    if (!in_array_) {
        f_.type = t;
        f_.n = 0;
        f_.line = line_ + 1;
        f_.line_len = len - 1;
        if (t == '*' || t == '>') {
            int64_t n = 0;
            if (truncated || !parse_num(line_ + 1, len - 1, n)) return fail("bad array length");
            if (n <= 0) {  // empty or null array: a frame of its own
                ready_ = true;
                return true;
            }
            if (n > int64_t(kMaxElems)) return fail("array of more elements than expected");
            f_.n = uint8_t(n);
            idx_ = 0;
            in_array_ = true;
            return true;
        }
        // A top-level simple value or bulk string: a frame of one element, read as one.
        f_.n = 1;
        idx_ = 0;
        in_array_ = true;
    }
    begin_elem(t);
    Elem& e = f_.e[idx_];
    switch (t) {
        case '$':
            if (truncated || !parse_num(line_ + 1, len - 1, e.num) || e.num > kMaxBulk)
                return fail("bad bulk length");
            if (e.num < 0) {
                e.num = -1;
                return finish_elem();
            }
            e.matches = idx_ == 1 && uint64_t(e.num) == match_.size();
            bulk_left_ = e.num;
            bulk_off_ = 0;
            st_ = e.num ? St::bulk : St::bulk_cr;
            return true;
        case ':':
            if (truncated || !parse_num(line_ + 1, len - 1, e.num)) return fail("bad integer");
            return finish_elem();
        case '*':
        case '>':
        case '%':
        case '~':
        case '|':
            return fail("nested aggregate");
        default: {
            const unsigned n = std::min(len - 1, kHead);
            memcpy(e.head, line_ + 1, n);
            e.head_len = uint8_t(n);
            return finish_elem();
        }
    }
}

size_t RespReader::step(const uint8_t* p, size_t n) {
    ready_ = false;
    if (err_) return 0;
    size_t i = 0;
    while (i < n) {
        switch (st_) {
            case St::line: {
                const void* nl = memchr(p + i, '\n', n - i);
                const size_t end = nl ? size_t(static_cast<const uint8_t*>(nl) - p) + 1 : n;
                for (size_t k = i; k < end; ++k) {
                    if (line_len_ < kLine) line_[line_len_++] = char(p[k]);
                }
                line_total_ += unsigned(std::min<size_t>(end - i, 1u << 20));
                // The byte before '\n' must be '\r': the last of this chunk, or of the last.
                const uint8_t before = end - i >= 2 ? p[end - 2] : uint8_t(line_cr_ ? '\r' : 0);
                line_cr_ = end > i && p[end - 1] == '\r';
                i = end;
                if (!nl) {
                    if (line_total_ > 65536) {
                        fail("RESP line too long");
                        return i;
                    }
                    break;
                }
                if (before != '\r' || line_total_ < 2) {
                    fail("RESP line without CR");
                    return i;
                }
                const bool ok = end_line();
                line_len_ = line_total_ = 0;
                line_cr_ = false;
                if (!ok || ready_) return i;
                break;
            }
            case St::bulk: {
                Elem& e = f_.e[idx_];
                const size_t take = size_t(std::min<int64_t>(bulk_left_, int64_t(n - i)));
                if (bulk_off_ < int64_t(kHead)) {
                    const size_t h = std::min<size_t>(take, kHead - size_t(bulk_off_));
                    memcpy(e.head + bulk_off_, p + i, h);
                    e.head_len = uint8_t(bulk_off_ + int64_t(h));
                }
                if (e.matches && memcmp(match_.data() + bulk_off_, p + i, take) != 0)
                    e.matches = false;
                bulk_off_ += int64_t(take);
                bulk_left_ -= int64_t(take);
                i += take;
                if (bulk_left_ == 0) st_ = St::bulk_cr;
                break;
            }
            case St::bulk_cr:
                if (p[i++] != '\r') {
                    fail("bulk string without CRLF");
                    return i;
                }
                st_ = St::bulk_lf;
                break;
            case St::bulk_lf:
                if (p[i++] != '\n') {
                    fail("bulk string without CRLF");
                    return i;
                }
                st_ = St::line;
                finish_elem();
                if (ready_) return i;
                break;
        }
    }
    return i;
}

// ---------------------------------------------------------------------------------------------
// PubSubLoad

namespace {

// Appends a RESP bulk string (appends only: GCC 12 warns, wrongly, on `"$" + string`).
void bulk(std::string& out, std::string_view s) {
    out += '$';
    out += std::to_string(s.size());
    out += "\r\n";
    out.append(s);
    out += "\r\n";
}

uint64_t rd64(const uint8_t* p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

// memcmp(a, b, n) == 0 inline, 8 bytes at a time: the expected header (~40 bytes) is matched
// once per delivery, and a libc call with a length unknown at compile time costs more than
// the compare.
inline bool same_bytes(const uint8_t* a, const uint8_t* b, size_t n) {
    uint64_t diff = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) diff |= rd64(a + i) ^ rd64(b + i);
    for (; i < n; ++i) diff |= uint64_t(a[i] ^ b[i]);
    return diff == 0;
}

}  // namespace

bool PubSubLoad::init(const PubSubConfig& cfg, uint64_t hz, uint64_t now) {
    cfg_ = cfg;
    if (cfg_.lag == 0) cfg_.lag = cfg_.window;
    if (cfg_.subs < 1 || cfg_.subs > kMaxSubs) {
        error_ = "subs: 1.." + std::to_string(kMaxSubs);
        return false;
    }
    if (cfg_.size < kMinSize || cfg_.size > kMaxSize) {
        error_ = "size: " + std::to_string(kMinSize) + ".." + std::to_string(kMaxSize);
        return false;
    }
    if (cfg_.window < 1 || cfg_.window > kMaxWindow || cfg_.lag > kMaxWindow) {
        error_ = "window, lag: 1.." + std::to_string(kMaxWindow);
        return false;
    }
    if (cfg_.channel.empty() || cfg_.channel.size() > kMaxChannel) {
        error_ = "channel: 1.." + std::to_string(kMaxChannel) + " bytes";
        return false;
    }
    if (!(cfg_.duration_s > 0) || hz == 0) {
        error_ = "duration must be > 0";
        return false;
    }
    hz_ = hz;
    ns_per_tick_ = 1e9 / double(hz);
    subscribe_cmd_ = "*2\r\n";
    bulk(subscribe_cmd_, "SUBSCRIBE");
    bulk(subscribe_cmd_, cfg_.channel);
    // PUBLISH <channel> <payload>; the payload: timestamp, sequence number, filler.
    pub_tmpl_ = "*3\r\n";
    bulk(pub_tmpl_, "PUBLISH");
    bulk(pub_tmpl_, cfg_.channel);
    pub_tmpl_ += '$';
    pub_tmpl_ += std::to_string(cfg_.size);
    pub_tmpl_ += "\r\n";
    pub_payload_off_ = pub_tmpl_.size();
    pub_tmpl_.append(cfg_.size, 'x');
    pub_tmpl_ += "\r\n";
    // What a subscriber receives, up to the payload.
    msg_hdr_ = "*3\r\n";
    bulk(msg_hdr_, "message");
    bulk(msg_hdr_, cfg_.channel);
    msg_hdr_ += '$';
    msg_hdr_ += std::to_string(cfg_.size);
    msg_hdr_ += "\r\n";
    msg_frame_len_ = msg_hdr_.size() + cfg_.size + 2;
    reply_ = ":" + std::to_string(cfg_.subs);
    reply_ += "\r\n";
    id_len_ = msg_hdr_.size() + 16;  // <= kStash: the channel is at most kMaxChannel bytes
    subs_.assign(size_t(cfg_.subs) + 1, Sub{});
    for (Sub& s : subs_) s.rd.set_match(cfg_.channel);
    pub_rd_.set_match(cfg_.channel);
    uint64_t ring = 1;
    while (ring < cfg_.lag) ring <<= 1;
    have_.assign(ring, 0);
    have_mask_ = ring - 1;
    hist_.clear();
    phase_ = Phase::setup;
    t_setup_end_ = now + uint64_t(cfg_.setup_s * double(hz));
    t_last_ = now;
    return true;
}

std::string_view PubSubLoad::hello(uint32_t id) const {
    if (id == kPublisher || id > cfg_.subs) return {};
    return subscribe_cmd_;
}

void PubSubLoad::on_connected(uint32_t id, uint64_t now) {
    t_last_ = now;
    if (id > cfg_.subs) return;
    if (id == kPublisher) {
        if (!pub_connected_) {
            pub_connected_ = true;
            connected_++;
        }
        return;
    }
    if (!subs_[id].connected) {
        subs_[id].connected = true;
        connected_++;
    }
}

void PubSubLoad::on_closed(uint32_t id, const char* why) {
    if (phase_ == Phase::done) return;
    char what[64];
    snprintf(what, sizeof what, "connection %u (%s) closed", id,
             id == kPublisher ? "publisher" : "subscriber");
    fail(what, why);
}

void PubSubLoad::fail(const char* what, const char* detail) {
    if (phase_ == Phase::done && !error_.empty()) return;
    if (error_.empty()) {
        error_ = what;
        if (detail && *detail) {
            error_ += ": ";
            error_ += detail;
        }
    }
    if (phase_ != Phase::setup && t_stop_ == 0) t_stop_ = t_last_;
    phase_ = Phase::done;
}

bool PubSubLoad::on_data(uint32_t id, const uint8_t* p, size_t n, uint64_t now) {
    if (phase_ == Phase::done) return true;  // a late reply: not counted
    t_last_ = now;
    if (id == kPublisher) return pub_data(p, n);
    if (id > cfg_.subs) return true;
    return sub_data(id, subs_[id], p, n, now);
}

bool PubSubLoad::pub_data(const uint8_t* p, size_t n) {
    // The common reply, ":<subs>\r\n", matched whole; anything else through the reader.
    const uint8_t* want = reinterpret_cast<const uint8_t*>(reply_.data());
    const size_t wlen = reply_.size();
    while (n) {
        if (pub_rd_.at_boundary()) {
            while (n >= wlen && same_bytes(p, want, wlen)) {
                replies_++;
                p += wlen;
                n -= wlen;
            }
            if (!n) break;
        }
        const size_t k = pub_rd_.step(p, n);
        p += k;
        n -= k;
        if (pub_rd_.error()) {
            fail("publisher: bad reply stream", pub_rd_.error());
            return false;
        }
        if (!pub_rd_.frame_ready()) continue;
        const RespReader::Frame& f = pub_rd_.frame();
        if (f.type == ':' && f.n == 1) {
            replies_++;
            if (f.e[0].num != int64_t(cfg_.subs)) reply_mismatch_++;
        } else if (f.type == '-') {
            std::string text(f.line, std::min<unsigned>(f.line_len, RespReader::kLine - 1));
            fail("publisher: error reply", text.c_str());
            return false;
        } else {
            char t[2] = {f.type, 0};
            fail("publisher: unexpected reply of type", t);
            return false;
        }
    }
    if (replies_ > published_) {
        fail("publisher: more replies than commands");
        return false;
    }
    if (phase_ == Phase::draining) maybe_drained(t_last_);
    return true;
}

// The rest of a message frame whose start the fast path took: payload bytes, then CRLF.
bool PubSubLoad::sub_skip(uint32_t id, Sub& s, const uint8_t*& p, size_t& n) {
    const size_t take = std::min<size_t>(s.skip, n);
    const size_t cr = s.skip - 2;  // offsets from p of the frame's CR and LF (skip >= 2)
    if ((cr < take && p[cr] != '\r') || (cr + 1 < take && p[cr + 1] != '\n')) {
        char what[64];
        snprintf(what, sizeof what, "subscriber %u: message frame without CRLF", id);
        fail(what);
        return false;
    }
    s.skip -= uint32_t(take);
    p += take;
    n -= take;
    return true;
}

// One step of the subscriber's reader over [p, p + n) (advanced): at most one frame, handed
// to sub_frame. false: the stream is broken, or the frame failed a check.
bool PubSubLoad::sub_step(uint32_t id, Sub& s, const uint8_t*& p, size_t& n, uint64_t now) {
    const size_t k = s.rd.step(p, n);
    p += k;
    n -= k;
    if (s.rd.error()) {
        char what[64];
        snprintf(what, sizeof what, "subscriber %u: bad stream", id);
        fail(what, s.rd.error());
        return false;
    }
    return !s.rd.frame_ready() || sub_frame(id, s, s.rd.frame(), now);
}

// The reader over all of [p, p + n): frames the fast path did not take.
bool PubSubLoad::sub_slow(uint32_t id, Sub& s, const uint8_t* p, size_t n, uint64_t now) {
    while (n) {
        if (!sub_step(id, s, p, n, now)) return false;
    }
    return true;
}

bool PubSubLoad::sub_data(uint32_t id, Sub& s, const uint8_t* p, size_t n, uint64_t now) {
    const uint8_t* hdr = reinterpret_cast<const uint8_t*>(msg_hdr_.data());
    const size_t hlen = msg_hdr_.size(), flen = msg_frame_len_, need = id_len_;
    // The chunk was written by the other core: ask for all of its lines at once rather than
    // missing on each in turn as the frames are matched. Only for small frames, whose every
    // line is read (measured with 16-byte payloads); of a 1 KiB frame a line or two is.
    if (flen <= 256)
        for (size_t off = 0; off < n; off += 64) __builtin_prefetch(p + off);
    while (n) {
        if (s.skip && (!sub_skip(id, s, p, n) || !n)) break;
        if (s.stash_len) {
            // A frame cut short by the last chunk: complete its first `need` bytes.
            const size_t take = std::min(need - s.stash_len, n);
            memcpy(s.stash + s.stash_len, p, take);
            s.stash_len = uint16_t(s.stash_len + take);
            p += take;
            n -= take;
            const size_t have = s.stash_len;
            if (!same_bytes(s.stash, hdr, std::min(have, hlen))) {
                // Not a message after all (a reply shorter than `need`, maybe): the reader's.
                s.stash_len = 0;
                if (!sub_slow(id, s, s.stash, have, now)) return false;
                continue;
            }
            if (have < need) break;  // n is 0
            s.stash_len = 0;
            if (!message(s, rd64(s.stash + hlen), rd64(s.stash + hlen + 8), now)) return false;
            s.skip = uint32_t(flen - need);
            continue;
        }
        if (s.rd.at_boundary()) {
            // Fast path: whole message frames, matched against the expected header.
            while (n >= flen && same_bytes(p, hdr, hlen) && p[flen - 2] == '\r' &&
                   p[flen - 1] == '\n') {
                if (!message(s, rd64(p + hlen), rd64(p + hlen + 8), now)) return false;
                p += flen;
                n -= flen;
            }
            if (!n) break;
            if (n < flen && n >= need && same_bytes(p, hdr, hlen)) {
                // The start of one, cut by the end of the chunk: the rest is skipped.
                if (!message(s, rd64(p + hlen), rd64(p + hlen + 8), now)) return false;
                s.skip = uint32_t(flen - need);
                p += need;
                n -= need;
                continue;
            }
            if (n < need && same_bytes(p, hdr, std::min(n, hlen))) {
                memcpy(s.stash, p, n);
                s.stash_len = uint16_t(n);
                break;
            }
        }
        // Anything else, one frame at a time (the fast path may take the next one).
        if (!sub_step(id, s, p, n, now)) return false;
    }
    if (phase_ == Phase::draining) maybe_drained(now);
    return !done() || error_.empty();
}

bool PubSubLoad::sub_frame(uint32_t id, Sub& s, const RespReader::Frame& f, uint64_t now) {
    char what[64];
    if ((f.type == '*' || f.type == '>') && f.n == 3 && f.e[0].type == '$' &&
        f.e[0].num == f.e[0].head_len) {
        const std::string_view kind(reinterpret_cast<const char*>(f.e[0].head), f.e[0].head_len);
        if (kind == "message") {
            if (f.e[1].type != '$' || !f.e[1].matches || f.e[2].type != '$' ||
                f.e[2].num != int64_t(cfg_.size) || f.e[2].head_len < 16) {
                snprintf(what, sizeof what, "subscriber %u: malformed message frame", id);
                fail(what);
                return false;
            }
            return message(s, rd64(f.e[2].head), rd64(f.e[2].head + 8), now);
        }
        if (kind == "subscribe") {
            if (f.e[1].type != '$' || !f.e[1].matches || f.e[2].type != ':') {
                snprintf(what, sizeof what, "subscriber %u: malformed subscribe confirmation", id);
                fail(what);
                return false;
            }
            if (!s.subscribed) {
                s.subscribed = true;
                subscribed_++;
            }
            return true;
        }
        snprintf(what, sizeof what, "subscriber %u: unexpected frame", id);
        const std::string k(kind);
        fail(what, k.c_str());
        return false;
    }
    if (f.type == '-') {
        snprintf(what, sizeof what, "subscriber %u: error reply", id);
        const std::string text(f.line, std::min<unsigned>(f.line_len, RespReader::kLine - 1));
        fail(what, text.c_str());
        return false;
    }
    snprintf(what, sizeof what, "subscriber %u: unexpected reply of type '%c'", id, f.type);
    fail(what);
    return false;
}

bool PubSubLoad::message(Sub& s, uint64_t ts, uint64_t seq, uint64_t now) {
    if (seq >= published_) {
        fail("a subscriber got a sequence number that was never published");
        return false;
    }
    s.received++;
    if (seq == s.next_seq) {
        s.next_seq++;
        account(seq);
    } else if (seq > s.next_seq) {
        s.lost += seq - s.next_seq;
        for (uint64_t k = s.next_seq; k <= seq; ++k) account(k);
        s.next_seq = seq + 1;
    } else {
        s.reordered++;  // a duplicate or a late one: accounted for when it was skipped
    }
    if (now < t_end_) {
        delivered_++;
        hist_.record(now > ts ? now - ts : 0);  // ticks: converted when reported
    } else {
        late_++;
    }
    return true;
}

void PubSubLoad::account(uint64_t seq) {
    if (seq < all_have_) return;
    if (++have_[seq & have_mask_] < cfg_.subs || seq != all_have_) return;
    while (all_have_ < published_ && have_[all_have_ & have_mask_] == cfg_.subs) {
        have_[all_have_ & have_mask_] = 0;
        all_have_++;
    }
}

void PubSubLoad::maybe_drained(uint64_t now) {
    if (replies_ == published_ && all_have_ == published_) {
        drained_ = true;
        t_done_ = now;
        phase_ = Phase::done;
    }
}

void PubSubLoad::tick(uint64_t now) {
    t_last_ = now;
    switch (phase_) {
        case Phase::setup:
            if (connected_ == conns() && subscribed_ == cfg_.subs) {
                t0_ = now;
                started_ = true;
                t_end_ = now + uint64_t(cfg_.duration_s * double(hz_));
                phase_ = Phase::measuring;
            } else if (now >= t_setup_end_) {
                char d[96];
                snprintf(d, sizeof d, "%u of %u connected, %u of %u subscribed", connected_,
                         conns(), subscribed_, cfg_.subs);
                fail("setup timed out", d);
            }
            return;
        case Phase::measuring:
            if (now < t_end_) return;
            phase_ = Phase::draining;
            t_stop_ = t_end_;
            t_drain_end_ = now + uint64_t(cfg_.drain_s * double(hz_));
            maybe_drained(now);
            return;
        case Phase::draining:
            maybe_drained(now);
            if (phase_ == Phase::draining && now >= t_drain_end_) {
                t_done_ = now;
                phase_ = Phase::done;
            }
            return;
        case Phase::done:
            return;
    }
}

size_t PubSubLoad::fill_publishes(uint8_t* out, size_t cap, uint64_t now) {
    if (phase_ != Phase::measuring) return 0;
    if (now >= t_end_) {
        tick(now);
        return 0;
    }
    const uint64_t unreplied = published_ - replies_;
    const uint64_t ahead = published_ - all_have_;
    if (unreplied >= cfg_.window || ahead >= cfg_.lag) return 0;
    const uint64_t allow = std::min<uint64_t>(cfg_.window - unreplied, cfg_.lag - ahead);
    const size_t len = pub_tmpl_.size();
    const size_t n = size_t(std::min<uint64_t>(allow, cap / len));
    for (size_t i = 0; i < n; ++i) {
        uint8_t* cmd = out + i * len;
        memcpy(cmd, pub_tmpl_.data(), len);
        memcpy(cmd + pub_payload_off_, &now, 8);
        memcpy(cmd + pub_payload_off_ + 8, &published_, 8);
        published_++;
    }
    return n * len;
}

uint64_t PubSubLoad::lost() const {
    uint64_t l = 0;
    for (size_t i = 1; i < subs_.size(); ++i) {
        const Sub& s = subs_[i];
        l += s.lost + (published_ > s.next_seq ? published_ - s.next_seq : 0);
    }
    return l;
}

uint64_t PubSubLoad::reordered() const {
    uint64_t r = 0;
    for (size_t i = 1; i < subs_.size(); ++i) r += subs_[i].reordered;
    return r;
}

int PubSubLoad::exit_code() const {
    const bool ok =
        error_.empty() && drained_ && lost() == 0 && reordered() == 0 && reply_mismatch_ == 0;
    return ok ? 0 : 1;
}

void PubSubLoad::report(FILE* line_out, FILE* detail_out) const {
    const bool measured = started_ && t_stop_ > t0_;
    if (measured) {
        const double secs = double(t_stop_ - t0_) / double(hz_);
        fprintf(line_out,
                "pubsub: subs=%u size=%u published=%" PRIu64 " delivered=%" PRIu64
                " seconds=%.3f delivered_per_s=%.0f p50_us=%.2f p99_us=%.2f lost=%" PRIu64
                " reordered=%" PRIu64 "\n",
                cfg_.subs, cfg_.size, published_, delivered_, secs, double(delivered_) / secs,
                us(hist_.percentile(0.50)), us(hist_.percentile(0.99)), lost(), reordered());
        fflush(line_out);
    }
    const double drain_s =
        t_done_ > t_stop_ && t_stop_ ? double(t_done_ - t_stop_) / double(hz_) : 0.0;
    fprintf(detail_out,
            "pubsub: detail subs=%u size=%u window=%u lag=%u channel=%s p999_us=%.2f "
            "max_us=%.2f replies=%" PRIu64 " reply_mismatch=%" PRIu64 " late=%" PRIu64
            " drained=%s drain_s=%.3f\n",
            cfg_.subs, cfg_.size, cfg_.window, cfg_.lag, cfg_.channel.c_str(),
            us(hist_.percentile(0.999)), us(hist_.max()), replies_, reply_mismatch_, late_,
            drained_ ? "yes" : "no", drain_s);
    if (!error_.empty()) fprintf(detail_out, "pubsub: error: %s\n", error_.c_str());
    if (!measured && error_.empty()) fprintf(detail_out, "pubsub: error: nothing measured\n");
    if (reply_mismatch_)
        fprintf(detail_out,
                "pubsub: error: %" PRIu64 " PUBLISH replies did not count %u receivers\n",
                reply_mismatch_, cfg_.subs);
    if (measured && !drained_ && error_.empty())
        fprintf(detail_out, "pubsub: error: not drained within %.1f s of the window's end\n",
                cfg_.drain_s);
    fflush(detail_out);
}

}  // namespace sluice::bench
