// The RESP front end: InBuf, RequestParser (after Redis's networking.c processMultibulkBuffer
// and processInlineBuffer, and sds.c sdssplitargs), OutBuf and the reply encoders.
#include "apps/broker/resp.hpp"

#include <rte_malloc.h>

#include <algorithm>
#include <cstring>

namespace sluice::apps::broker {

namespace {

// Digits of v, written at p; returns the end.
char* put_u64(char* p, uint64_t v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = char('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

char* put_i64(char* p, int64_t v) {
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, uint64_t(0) - uint64_t(v));  // INT64_MIN included
    }
    return put_u64(p, uint64_t(v));
}

uint32_t digits(uint64_t v) {
    uint32_t n = 1;
    while (v >= 10) {
        v /= 10;
        ++n;
    }
    return n;
}

char* put_str(char* p, std::string_view s) {
    memcpy(p, s.data(), s.size());
    return p + s.size();
}

char* put_crlf(char* p) {
    p[0] = '\r';
    p[1] = '\n';
    return p + 2;
}

// "$<len>\r\n<s>\r\n"
char* put_bulk(char* p, std::string_view s) {
    *p++ = '$';
    p = put_u64(p, s.size());
    p = put_crlf(p);
    p = put_str(p, s);
    return put_crlf(p);
}

uint64_t bulk_size(std::string_view s) {
    return 1 + digits(s.size()) + 2 + s.size() + 2;
}

constexpr std::string_view kErrTooBigInline = "-ERR Protocol error: too big inline request\r\n";
constexpr std::string_view kErrUnbalanced = "-ERR Protocol error: unbalanced quotes in request\r\n";
constexpr std::string_view kErrTooBigMbulk = "-ERR Protocol error: too big mbulk count string\r\n";
constexpr std::string_view kErrMbulkLen = "-ERR Protocol error: invalid multibulk length\r\n";
constexpr std::string_view kErrTooBigBulk = "-ERR Protocol error: too big bulk count string\r\n";
constexpr std::string_view kErrBulkLen = "-ERR Protocol error: invalid bulk length\r\n";

// C's isspace in the "C" locale, as sdssplitargs uses it to skip blanks between arguments.
bool is_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool is_hex(int c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
}

// A backslash escape inside double quotes (sdssplitargs): \n \r \t \b \a, and any other
// character stands for itself (\" and \\ included).
char unescape(int c) {
    switch (c) {
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        case 'b':
            return '\b';
        case 'a':
            return '\a';
        default:
            return char(c);
    }
}

// Redis's sdssplitargs (sds.c) over s[0, len), the arguments' bytes written to `out` (at most
// len bytes: an argument is never longer than its source) and appended to `args`. False on
// unbalanced quotes (an unterminated quoted argument, or a closing quote followed by something
// else than a space). Redis runs it on a C string, so a NUL byte would end the line there; here
// NUL is an ordinary byte (in Redis an inline request holding a NUL never completes: its search
// for the '\n' is a strchr that stops at the NUL).
bool split_args(const char* s, uint32_t len, char* out, std::vector<Arg>& args) {
    // The byte at k, or -1 past the end (where sdssplitargs sees the terminating NUL).
    auto c = [&](uint32_t k) -> int { return k < len ? int(uint8_t(s[k])) : -1; };
    uint32_t i = 0;
    char* w = out;
    for (;;) {
        while (i < len && is_space(c(i))) ++i;  // skip blanks
        if (i == len) return true;
        char* const start = w;
        bool inq = false;   // in "double quotes"
        bool insq = false;  // in 'single quotes'
        bool done = false;
        while (!done) {
            const int ch = c(i);
            if (inq) {
                if (ch == '\\' && c(i + 1) == 'x' && is_hex(c(i + 2)) && is_hex(c(i + 3))) {
                    *w++ = char(hex_value(c(i + 2)) * 16 + hex_value(c(i + 3)));
                    i += 3;
                } else if (ch == '\\' && c(i + 1) != -1) {
                    ++i;
                    *w++ = unescape(c(i));
                } else if (ch == '"') {
                    // The closing quote must be followed by a space or nothing at all.
                    if (c(i + 1) != -1 && !is_space(c(i + 1))) return false;
                    done = true;
                } else if (ch == -1) {
                    return false;  // unterminated quotes
                } else {
                    *w++ = char(ch);
                }
            } else if (insq) {
                if (ch == '\\' && c(i + 1) == '\'') {
                    ++i;
                    *w++ = '\'';
                } else if (ch == '\'') {
                    if (c(i + 1) != -1 && !is_space(c(i + 1))) return false;
                    done = true;
                } else if (ch == -1) {
                    return false;
                } else {
                    *w++ = char(ch);
                }
            } else {
                switch (ch) {
                    case ' ':
                    case '\n':
                    case '\r':
                    case '\t':
                    case -1:
                        done = true;
                        break;
                    case '"':
                        inq = true;
                        break;
                    case '\'':
                        insq = true;
                        break;
                    default:
                        *w++ = char(ch);
                        break;
                }
            }
            if (i < len) ++i;
        }
        args.push_back(Arg{start, uint32_t(w - start), kNoOffset});
    }
}

}  // namespace

// --- InBuf -----------------------------------------------------------------------------------

InBuf::~InBuf() {
    clear();
}

namespace {
void free_big(void* addr, void*) {
    rte_free(addr);
}
}  // namespace

rte_mbuf* InBuf::new_big() const {
    rte_mbuf* m = rte_pktmbuf_alloc(big_pool_);
    if (!m) return nullptr;
    void* buf = rte_malloc("sluice_inbuf", kBigBuf, RTE_CACHE_LINE_SIZE);
    uint16_t len = kBigBuf;
    rte_mbuf_ext_shared_info* sh =
        buf ? rte_pktmbuf_ext_shinfo_init_helper(buf, &len, free_big, nullptr) : nullptr;
    if (!sh) {
        rte_free(buf);
        rte_pktmbuf_free(m);
        return nullptr;
    }
    rte_pktmbuf_attach_extbuf(m, buf, rte_malloc_virt2iova(buf), len, sh);
    return m;
}

void InBuf::append(rte_mbuf* chain) {
    while (chain) {
        rte_mbuf* s = chain;
        chain = s->next;
        // Each segment stands alone from here on: consume() frees them one by one.
        s->next = nullptr;
        s->nb_segs = 1;
        s->pkt_len = s->data_len;
        if (s->data_len == 0) {
            rte_pktmbuf_free_seg(s);
            continue;
        }
        if (big_pool_ && segments() >= kCoalesceAbove) {
            // Copied into big buffers; only what finds no buffer is kept as received.
            const char* src = rte_pktmbuf_mtod(s, const char*);
            uint32_t left = s->data_len;
            while (left) {
                if (!tail_big_ || rte_pktmbuf_tailroom(segs_.back().m) == 0) {
                    rte_mbuf* b = new_big();
                    if (!b) break;
                    segs_.push_back(Seg{rte_pktmbuf_mtod(b, const char*), 0, end_, b, true});
                    tail_big_ = true;
                }
                Seg& t = segs_.back();
                const uint32_t k = std::min<uint32_t>(left, rte_pktmbuf_tailroom(t.m));
                memcpy(rte_pktmbuf_append(t.m, uint16_t(k)), src, k);
                t.len += k;
                end_ += k;
                src += k;
                left -= k;
            }
            if (left == 0) {
                rte_pktmbuf_free_seg(s);
                continue;
            }
            rte_pktmbuf_adj(s, uint16_t(s->data_len - left));
        }
        segs_.push_back(Seg{rte_pktmbuf_mtod(s, const char*), s->data_len, end_, s, false});
        end_ += s->data_len;
        rx_segs_++;
        tail_big_ = false;
    }
}

void InBuf::consume(uint32_t n) {
    base_ += std::min<uint64_t>(n, end_ - base_);
    while (first_ < segs_.size() && segs_[first_].start + segs_[first_].len <= base_) {
        free_seg(segs_[first_]);
        ++first_;
    }
    if (first_ == segs_.size()) {
        segs_.clear();  // capacity kept
        first_ = 0;
        hint_ = 0;
        tail_big_ = false;
    } else if (first_ >= 32 && first_ * 2 >= segs_.size()) {
        // Drop the freed entries at the front now and then: amortised O(1) per segment.
        segs_.erase(segs_.begin(), segs_.begin() + ptrdiff_t(first_));
        first_ = 0;
        hint_ = 0;
    }
}

void InBuf::clear() {
    for (size_t i = first_; i < segs_.size(); ++i) free_seg(segs_[i]);
    segs_.clear();
    tail_big_ = false;
    first_ = 0;
    hint_ = 0;
    base_ = end_ = 0;
}

size_t InBuf::locate(uint64_t a) const {
    size_t i = hint_;
    if (i >= first_ && i < segs_.size() && a >= segs_[i].start) {
        if (a < segs_[i].start + segs_[i].len) return i;
        if (i + 1 < segs_.size() && a < segs_[i + 1].start + segs_[i + 1].len) {
            hint_ = i + 1;
            return i + 1;
        }
    }
    auto it = std::upper_bound(segs_.begin() + ptrdiff_t(first_), segs_.end(), a,
                               [](uint64_t v, const Seg& s) { return v < s.start; });
    i = size_t(it - segs_.begin()) - 1;
    hint_ = i;
    return i;
}

uint8_t InBuf::at(uint32_t off) const {
    const uint64_t a = base_ + off;
    const Seg& s = segs_[locate(a)];
    return uint8_t(s.data[a - s.start]);
}

const char* InBuf::span(uint32_t off, uint32_t& avail) const {
    const uint64_t a = base_ + off;
    const Seg& s = segs_[locate(a)];
    const uint32_t o = uint32_t(a - s.start);
    avail = s.len - o;
    return s.data + o;
}

void InBuf::copy(uint32_t off, uint32_t len, void* dst) const {
    char* d = static_cast<char*>(dst);
    if (len == 0) return;
    const uint64_t a = base_ + off;
    size_t i = locate(a);
    uint32_t o = uint32_t(a - segs_[i].start);
    while (len) {
        const Seg& s = segs_[i];
        const uint32_t k = std::min(len, s.len - o);
        memcpy(d, s.data + o, k);
        d += k;
        len -= k;
        o = 0;
        ++i;
    }
    if (i > first_) hint_ = i - 1;
}

const char* InBuf::contiguous(uint32_t off, uint32_t len) const {
    if (len == 0) return "";
    const uint64_t a = base_ + off;
    const Seg& s = segs_[locate(a)];
    const uint64_t o = a - s.start;
    return o + len <= s.len ? s.data + o : nullptr;
}

int64_t InBuf::find(uint8_t c, uint32_t from, uint32_t limit) const {
    limit = std::min(limit, size());
    if (from >= limit) return -1;
    const uint64_t end = base_ + limit;
    uint64_t a = base_ + from;
    size_t i = locate(a);
    while (a < end) {
        const Seg& s = segs_[i];
        const uint32_t o = uint32_t(a - s.start);
        const uint32_t k = uint32_t(std::min<uint64_t>(s.len - o, end - a));
        const void* hit = memchr(s.data + o, c, k);
        if (hit) {
            hint_ = i;
            return int64_t(s.start + uint64_t(static_cast<const char*>(hit) - s.data) - base_);
        }
        a += k;
        ++i;
    }
    return -1;
}

int64_t InBuf::find_crlf(uint32_t from, uint32_t limit) const {
    for (;;) {
        const int64_t r = find('\r', from, limit);
        if (r < 0) return -1;
        if (uint64_t(r) + 1 < size() && at(uint32_t(r + 1)) == '\n') return r;
        from = uint32_t(r + 1);
    }
}

rte_mbuf* InBuf::clone(uint32_t off, uint32_t len, rte_mempool* pool) const {
    if (len == 0) return rte_pktmbuf_alloc(pool);
    const uint64_t a = base_ + off;
    const size_t first = locate(a);
    const size_t last = locate(a + len - 1);
    if (last - first + 1 > UINT16_MAX) return nullptr;  // more than nb_segs can count
    rte_mbuf* head = nullptr;
    rte_mbuf* tail = nullptr;
    uint32_t o = uint32_t(a - segs_[first].start);
    uint32_t left = len;
    for (size_t i = first; left; ++i) {
        const Seg& s = segs_[i];
        const uint32_t k = std::min(left, s.len - o);
        rte_mbuf* mi = rte_pktmbuf_alloc(pool);
        if (!mi) {
            if (head) rte_pktmbuf_free(head);
            return nullptr;
        }
        rte_pktmbuf_attach(mi, s.m);
        mi->data_off = uint16_t(s.m->data_off + o);
        mi->data_len = uint16_t(k);
        mi->pkt_len = k;
        if (tail)
            tail->next = mi;
        else
            head = mi;
        tail = mi;
        left -= k;
        o = 0;
    }
    head->nb_segs = uint16_t(last - first + 1);
    head->pkt_len = len;
    return head;
}

// --- RequestParser ---------------------------------------------------------------------------

bool string2ll(const char* s, size_t len, int64_t* out) {
    // A string of zero length or excessive length (LONG_STR_SIZE, 21) is not a valid number.
    if (len == 0 || len >= 21) return false;
    if (len == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    size_t i = 0;
    bool negative = false;
    if (s[0] == '-') {
        negative = true;
        if (++i == len) return false;  // only a sign
    }
    // The first digit is 1-9: no leading zeros (so "-0" and "01" are refused).
    if (s[i] < '1' || s[i] > '9') return false;
    uint64_t v = uint64_t(s[i++] - '0');
    for (; i < len; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        const uint64_t d = uint64_t(s[i] - '0');
        if (v > UINT64_MAX / 10) return false;
        v *= 10;
        if (v > UINT64_MAX - d) return false;
        v += d;
    }
    if (negative) {
        if (v > uint64_t(INT64_MAX) + 1) return false;
        *out = int64_t(uint64_t(0) - v);
    } else {
        if (v > uint64_t(INT64_MAX)) return false;
        *out = int64_t(v);
    }
    return true;
}

namespace {

// string2ll over the InBuf's [from, to).
bool number(const InBuf& in, uint32_t from, uint32_t to, int64_t* out) {
    const uint32_t len = to - from;
    if (len == 0 || len >= 21) return false;
    const char* p = in.contiguous(from, len);
    char buf[21];
    if (!p) {
        in.copy(from, len, buf);
        p = buf;
    }
    return string2ll(p, len, out);
}

}  // namespace

RequestParser::RequestParser(Limits l) : lim_(l) {}

void RequestParser::reset() {
    st_ = State::start;
    pos_ = scan_ = left_ = 0;
    bulk_ = 0;
}

Parse RequestParser::fail(std::string_view e, std::string_view& err) {
    err = e;
    reset();
    return Parse::error;
}

bool RequestParser::parse_fast(const char* p, uint32_t n, Request& req) {
    // `*<1-9>\r?`: the count line ends at its first '\r'; the byte after it is not checked
    // (Redis skips it), but must be there.
    if (n < 4 || p[1] < '1' || p[1] > '9' || p[2] != '\r') return false;
    const uint32_t argc = uint32_t(p[1] - '0');
    if (argc > lim_.max_args) return false;
    uint32_t pos = 4;
    args_.clear();
    for (uint32_t i = 0; i < argc; ++i) {
        // `$<len>\r?` with len as string2ll reads it: "0", or 1-9 then at most 8 digits.
        if (pos + 4 > n || p[pos] != '$') return false;
        uint32_t q = pos + 1;
        uint64_t len = 0;
        if (p[q] == '0') {
            ++q;
        } else {
            const uint32_t first = q;
            while (q < n && q - first < 9 && p[q] >= '0' && p[q] <= '9')
                len = len * 10 + uint64_t(p[q++] - '0');
            if (q == first || (q < n && p[q] >= '0' && p[q] <= '9')) return false;
        }
        if (q + 1 >= n || p[q] != '\r' || len > lim_.max_bulk) return false;
        pos = q + 2;
        // The payload and the two bytes after it (unchecked, as Redis).
        if (uint64_t(pos) + len + 2 > n) return false;
        args_.push_back(Arg{p + pos, uint32_t(len), pos});
        pos += uint32_t(len) + 2;
    }
    req.args.swap(args_);
    req.total = pos;
    req.is_inline = false;
    reset();
    return true;
}

Parse RequestParser::parse(const InBuf& in, Request& req, std::string_view& err) {
    if (st_ == State::start) {
        if (in.size() == 0) return Parse::need_more;
        uint32_t avail = 0;
        const char* p = in.span(0, avail);
        if (p[0] == '*' && parse_fast(p, avail, req)) return Parse::ok;
        args_.clear();
        pos_ = scan_ = 0;
        // Redis (processInputBuffer): a request starting with '*' is multibulk, anything else
        // an inline command.
        st_ = in.at(0) == '*' ? State::mb_count : State::inline_line;
    }
    if (st_ == State::inline_line) return parse_inline(in, req, err);
    return parse_multibulk(in, req, err);
}

// processInlineBuffer: the line up to the first '\n' (a '\r' before it is dropped), split with
// sdssplitargs. Without a '\n' in the first max_inline + 1 bytes: "too big inline request"
// (Redis complains when more than PROTO_INLINE_MAX_SIZE bytes are buffered without a '\n'; it
// reads at most 16 KiB at a time, so a longer line meets that check before its end arrives).
Parse RequestParser::parse_inline(const InBuf& in, Request& req, std::string_view& err) {
    const uint32_t size = in.size();
    const uint32_t window = uint32_t(std::min<uint64_t>(size, uint64_t(lim_.max_inline) + 1));
    const int64_t nl = in.find('\n', scan_, window);
    if (nl < 0) {
        if (size > lim_.max_inline) return fail(kErrTooBigInline, err);
        scan_ = window;
        return Parse::need_more;
    }
    uint32_t len = uint32_t(nl);
    if (len > 0 && in.at(len - 1) == '\r') --len;
    const char* line = in.contiguous(0, len);
    if (!line) {
        if (line_.size() < len) line_.resize(len);
        in.copy(0, len, line_.data());
        line = line_.data();
    }
    // The arena never moves while the arguments are placed: it is sized for the whole line
    // first (an argument is never longer than its source).
    if (arena_.size() < len) arena_.resize(len);
    args_.clear();
    if (!split_args(line, len, arena_.data(), args_)) return fail(kErrUnbalanced, err);
    // An empty line (or blanks only) gives no arguments: Redis skips it (resetClient).
    req.args.swap(args_);
    req.total = uint32_t(nl) + 1;
    req.is_inline = true;
    reset();
    return Parse::ok;
}

int64_t RequestParser::line_end(const InBuf& in) {
    const uint32_t size = in.size();
    const uint32_t window =
        uint32_t(std::min<uint64_t>(size, uint64_t(pos_) + lim_.max_inline + 1));
    const int64_t r = in.find('\r', scan_, window);
    if (r < 0) {
        // Redis: no '\r' and more than PROTO_INLINE_MAX_SIZE bytes buffered from the line's
        // start: the line is too long.
        if (size - pos_ > lim_.max_inline) return -2;
        scan_ = window;
        return -1;
    }
    // "Buffer should also contain \n": the byte after the '\r' must be here (Redis does not
    // check that it is a '\n': it skips it).
    if (uint64_t(r) + 1 >= size) {
        scan_ = uint32_t(r);
        return -1;
    }
    return r;
}

// processMultibulkBuffer. `*<n>\r\n`, then n times `$<len>\r\n<len bytes>\r\n`. Each line ends
// at its first '\r' (Redis's strchr), whatever the byte after it; the two bytes after a payload
// are skipped unchecked, as Redis does.
Parse RequestParser::parse_multibulk(const InBuf& in, Request& req, std::string_view& err) {
    for (;;) {
        switch (st_) {
            case State::mb_count: {
                const int64_t r = line_end(in);
                if (r == -1) return Parse::need_more;
                if (r == -2) return fail(kErrTooBigMbulk, err);
                int64_t n;
                if (!number(in, pos_ + 1, uint32_t(r), &n) || n > int64_t(lim_.max_args))
                    return fail(kErrMbulkLen, err);
                pos_ = uint32_t(r) + 2;
                // `*0` and any negative count (`*-1`) are an empty request: Redis skips it.
                if (n <= 0) return finish_multibulk(in, req);
                left_ = uint32_t(n);
                // As Redis preallocates argv: for up to 1024 arguments at once.
                args_.reserve(std::min<size_t>(left_, 1024));
                st_ = State::mb_bulk_header;
                scan_ = pos_;
                break;
            }
            case State::mb_bulk_header: {
                const int64_t r = line_end(in);
                if (r == -1) return Parse::need_more;
                if (r == -2) return fail(kErrTooBigBulk, err);
                const uint8_t c = in.at(pos_);
                if (c != '$') {
                    // addReplyErrorFormat("Protocol error: expected '$', got '%c'"): Redis
                    // maps "\r\n" in an error to spaces, and its sds formatting ends the
                    // string at a NUL (so a NUL byte leaves "got '").
                    static constexpr std::string_view pre =
                        "-ERR Protocol error: expected '$', got '";
                    char* p = put_str(errbuf_, pre);
                    if (c != 0) {
                        *p++ = (c == '\r' || c == '\n') ? ' ' : char(c);
                        *p++ = '\'';
                    }
                    p = put_crlf(p);
                    return fail(std::string_view(errbuf_, size_t(p - errbuf_)), err);
                }
                int64_t n;
                if (!number(in, pos_ + 1, uint32_t(r), &n) || n < 0 || uint64_t(n) > lim_.max_bulk)
                    return fail(kErrBulkLen, err);
                pos_ = uint32_t(r) + 2;
                bulk_ = uint64_t(n);
                st_ = State::mb_payload;
                [[fallthrough]];
            }
            case State::mb_payload: {
                // The payload and the two bytes after it (the CRLF, unchecked).
                if (uint64_t(in.size() - pos_) < bulk_ + 2) return Parse::need_more;
                args_.push_back(Arg{nullptr, uint32_t(bulk_), pos_});
                pos_ += uint32_t(bulk_) + 2;
                if (--left_ == 0) return finish_multibulk(in, req);
                st_ = State::mb_bulk_header;
                scan_ = pos_;
                break;
            }
            default:
                return Parse::need_more;  // not reached
        }
    }
}

// Points every argument at its bytes: inside its mbuf when it lies in one segment (zero copy),
// else copied into the arena. The arena is sized for all the copies first, so it does not move
// while they are placed.
Parse RequestParser::finish_multibulk(const InBuf& in, Request& req) {
    size_t copied = 0;
    for (Arg& a : args_) {
        a.p = in.contiguous(a.off, a.len);
        if (!a.p) copied += a.len;
    }
    if (copied) {
        if (arena_.size() < copied) arena_.resize(copied);
        char* w = arena_.data();
        for (Arg& a : args_) {
            if (a.p) continue;
            in.copy(a.off, a.len, w);
            a.p = w;
            w += a.len;
        }
    }
    req.args.swap(args_);
    req.total = pos_;
    req.is_inline = false;
    reset();
    return Parse::ok;
}

// --- OutBuf ----------------------------------------------------------------------------------

OutBuf::OutBuf(rte_mempool* pool) {
    set_pool(pool);
}

OutBuf::~OutBuf() {
    clear();
}

namespace {
// Bytes a fresh mbuf of `pool` holds: its data starts after min(RTE_PKTMBUF_HEADROOM, buf_len).
uint32_t fresh_room(rte_mempool* pool) {
    if (!pool) return 0;
    const uint32_t buf = rte_pktmbuf_data_room_size(pool);
    return buf > RTE_PKTMBUF_HEADROOM ? buf - RTE_PKTMBUF_HEADROOM : 0;
}
}  // namespace

void OutBuf::set_pool(rte_mempool* pool) {
    pool_ = pool;
    room_ = fresh_room(pool);
}

void OutBuf::set_pack_pool(rte_mempool* pack) {
    pack_ = pack;
    pack_room_ = fresh_room(pack);
}

bool OutBuf::put_frame_fresh(const void* data, uint32_t len) {
    if (len == 0) return true;
    if (!pack_ || len > pack_room_ || uint64_t(size_) + len > UINT32_MAX) return put(data, len);
    rte_mbuf* m = rte_pktmbuf_alloc(pack_);
    if (!m) return put(data, len);  // the pack pool is dry: small mbufs still work
    link_fresh(m);
    append_tail(data, len);
    return true;
}

bool OutBuf::put_packed_fresh(const void* data, uint32_t len) {
    if (len == 0) return true;
    if (uint64_t(size_) + len > UINT32_MAX) return false;
    constexpr uint32_t kMaxFresh = 32;
    const uint32_t avail = tail_own_ ? rte_pktmbuf_tailroom(tail_) : 0;
    const uint32_t n = pack_room_ ? (len - avail + pack_room_ - 1) / pack_room_ : 0;
    rte_mbuf* fresh[kMaxFresh];
    if (!pack_ || avail >= len || n > kMaxFresh || rte_pktmbuf_alloc_bulk(pack_, fresh, n) != 0)
        return put(data, len);  // small mbufs still work
    const char* src = static_cast<const char*>(data);
    if (avail) {
        append_tail(src, avail);
        src += avail;
        len -= avail;
    }
    for (uint32_t i = 0; i < n; ++i) {
        link_fresh(fresh[i]);
        const uint32_t part = std::min(len, pack_room_);
        append_tail(src, part);
        src += part;
        len -= part;
    }
    return true;
}

void OutBuf::clear() {
    if (head_) rte_pktmbuf_free(head_);
    head_ = tail_ = nullptr;
    size_ = segs_ = 0;
    tail_own_ = false;
}

bool OutBuf::putv(const std::string_view* parts, uint32_t n) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; ++i) total += parts[i].size();
    if (total == 0) return true;
    if (uint64_t(size_) + total > UINT32_MAX) return false;
    const uint32_t avail = tail_own_ ? rte_pktmbuf_tailroom(tail_) : 0;
    rte_mbuf* cur = avail ? tail_ : nullptr;
    if (total > avail) {
        // All the mbufs first, so that running out adds nothing.
        if (room_ == 0) return false;
        const uint64_t nfresh = (total - avail + room_ - 1) / room_;
        rte_mbuf* fresh = nullptr;
        rte_mbuf* last = nullptr;
        for (uint64_t got = 0; got < nfresh;) {
            rte_mbuf* batch[32];
            const unsigned k = unsigned(std::min<uint64_t>(nfresh - got, 32));
            if (rte_pktmbuf_alloc_bulk(pool_, batch, k) != 0) {
                if (fresh) rte_pktmbuf_free(fresh);
                return false;
            }
            for (unsigned j = 0; j < k; ++j) {
                if (last)
                    last->next = batch[j];
                else
                    fresh = batch[j];
                last = batch[j];
            }
            got += k;
        }
        if (tail_)
            tail_->next = fresh;
        else
            head_ = fresh;
        if (!cur) cur = fresh;
        tail_ = last;
        tail_own_ = true;
        segs_ += uint32_t(nfresh);
    }
    for (uint32_t i = 0; i < n; ++i) {
        const char* src = parts[i].data();
        size_t left = parts[i].size();
        while (left) {
            uint32_t room = rte_pktmbuf_tailroom(cur);
            if (room == 0) {
                cur = cur->next;
                room = rte_pktmbuf_tailroom(cur);
            }
            const uint32_t k = uint32_t(std::min<size_t>(left, room));
            memcpy(rte_pktmbuf_mtod_offset(cur, char*, cur->data_len), src, k);
            cur->data_len = uint16_t(cur->data_len + k);
            cur->pkt_len += k;
            src += k;
            left -= k;
        }
    }
    size_ += uint32_t(total);
    return true;
}

// A chain's segments and bytes; returns its last segment.
static rte_mbuf* chain_walk(rte_mbuf* m, uint32_t& n, uint32_t& bytes) {
    n = 0;
    bytes = 0;
    rte_mbuf* last = m;
    for (rte_mbuf* s = m; s; s = s->next) {
        ++n;
        bytes += s->data_len;
        last = s;
    }
    return last;
}

void OutBuf::put_chain(rte_mbuf* m) {
    if (!m) return;
    uint32_t n, bytes;
    rte_mbuf* last = chain_walk(m, n, bytes);
    if (tail_)
        tail_->next = m;
    else
        head_ = m;
    tail_ = last;
    tail_own_ = false;  // never write into a chain held by reference
    segs_ += n;
    size_ += bytes;
}

void OutBuf::unshift(rte_mbuf* m) {
    if (!m) return;
    uint32_t n, bytes;
    rte_mbuf* last = chain_walk(m, n, bytes);
    last->next = head_;
    if (!head_) {
        tail_ = last;
        tail_own_ = false;
    }
    head_ = m;
    segs_ += n;
    size_ += bytes;
}

rte_mbuf* OutBuf::take() {
    return take_front(UINT16_MAX);
}

rte_mbuf* OutBuf::take_front(uint32_t max_segs) {
    if (!head_ || max_segs == 0) return nullptr;
    rte_mbuf* h = head_;
    if (segs_ <= max_segs) {
        h->nb_segs = uint16_t(segs_);
        h->pkt_len = size_;
        head_ = tail_ = nullptr;
        size_ = segs_ = 0;
        tail_own_ = false;
        return h;
    }
    uint32_t bytes = 0;
    rte_mbuf* last = h;
    for (uint32_t i = 1; i < max_segs; ++i) {
        bytes += last->data_len;
        last = last->next;
    }
    bytes += last->data_len;
    head_ = last->next;
    last->next = nullptr;
    h->nb_segs = uint16_t(max_segs);
    h->pkt_len = bytes;
    size_ -= bytes;
    segs_ -= max_segs;
    return h;
}

bool OutBuf::header(char type, uint64_t n) {
    char buf[24];
    char* p = buf;
    *p++ = type;
    p = put_u64(p, n);
    p = put_crlf(p);
    return put(buf, uint32_t(p - buf));
}

bool OutBuf::simple(std::string_view s) {
    const std::string_view parts[3] = {"+", s, "\r\n"};
    return putv(parts, 3);
}

bool OutBuf::error(std::string_view s) {
    const std::string_view parts[3] = {"-", s, "\r\n"};
    return putv(parts, 3);
}

bool OutBuf::integer(int64_t v) {
    char buf[24];
    char* p = buf;
    *p++ = ':';
    p = put_i64(p, v);
    p = put_crlf(p);
    return put(buf, uint32_t(p - buf));
}

bool OutBuf::bulk(std::string_view s) {
    char hdr[24];
    char* p = hdr;
    *p++ = '$';
    p = put_u64(p, s.size());
    p = put_crlf(p);
    const std::string_view parts[3] = {std::string_view(hdr, size_t(p - hdr)), s, "\r\n"};
    return putv(parts, 3);
}

bool OutBuf::null(int resp) {
    return resp >= 3 ? put("_\r\n", 3) : put("$-1\r\n", 5);
}

bool OutBuf::null_array(int resp) {
    return resp >= 3 ? put("_\r\n", 3) : put("*-1\r\n", 5);
}

bool OutBuf::array(uint32_t n) {
    return header('*', n);
}

bool OutBuf::push(uint32_t n, int resp) {
    return header(resp >= 3 ? '>' : '*', n);
}

bool OutBuf::map(uint32_t n, int resp) {
    return resp >= 3 ? header('%', n) : header('*', uint64_t(n) * 2);
}

bool OutBuf::set(uint32_t n, int resp) {
    return header(resp >= 3 ? '~' : '*', n);
}

// --- pub/sub frame headers -------------------------------------------------------------------

uint32_t message_header_size(std::string_view kind, std::string_view channel,
                             uint32_t payload_len) {
    const uint64_t n = 4 + bulk_size(kind) + bulk_size(channel) + 1 + digits(payload_len) + 2;
    return n > UINT32_MAX ? UINT32_MAX : uint32_t(n);
}

uint32_t pmessage_header_size(std::string_view pattern, std::string_view channel,
                              uint32_t payload_len) {
    const uint64_t n = 4 + bulk_size("pmessage") + bulk_size(pattern) + bulk_size(channel) + 1 +
                       digits(payload_len) + 2;
    return n > UINT32_MAX ? UINT32_MAX : uint32_t(n);
}

uint32_t message_header(char* dst, uint32_t cap, int resp, std::string_view kind,
                        std::string_view channel, uint32_t payload_len) {
    const uint32_t n = message_header_size(kind, channel, payload_len);
    if (n > cap) return 0;
    char* p = dst;
    *p++ = resp >= 3 ? '>' : '*';
    *p++ = '3';
    p = put_crlf(p);
    p = put_bulk(p, kind);
    p = put_bulk(p, channel);
    *p++ = '$';
    p = put_u64(p, payload_len);
    put_crlf(p);
    return n;
}

uint32_t pmessage_header(char* dst, uint32_t cap, int resp, std::string_view pattern,
                         std::string_view channel, uint32_t payload_len) {
    const uint32_t n = pmessage_header_size(pattern, channel, payload_len);
    if (n > cap) return 0;
    char* p = dst;
    *p++ = resp >= 3 ? '>' : '*';
    *p++ = '4';
    p = put_crlf(p);
    p = put_bulk(p, "pmessage");
    p = put_bulk(p, pattern);
    p = put_bulk(p, channel);
    *p++ = '$';
    p = put_u64(p, payload_len);
    put_crlf(p);
    return n;
}

}  // namespace sluice::apps::broker
