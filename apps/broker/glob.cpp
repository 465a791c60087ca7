// Glob matching, Redis 7's stringmatchlen (util.c) with nocase = 0, reimplemented on string_views.
// Redis reads pattern[1] at the last byte and pattern[0] at the end (the sds terminator, NUL);
// here `at` yields NUL past the end, which reproduces those reads without reading out of bounds.
#include "apps/broker/glob.hpp"

#include <cstddef>

namespace sluice::apps::broker {
namespace {

inline char at(std::string_view v, size_t i) {
    return i < v.size() ? v[i] : '\0';
}

// The byte value Redis compares in a range: `int c = string[0]` of a (signed, on x86-64) char.
inline int range_value(char c) {
    return static_cast<signed char>(c);
}

// Matches pattern `p` against `s`. `skip_longer` is shared by the whole search: set when the
// rest of a pattern after a star failed at every position of the rest of the string, which makes
// every enclosing star give up (Redis's skipLongerMatches). `nesting` counts enclosing stars.
bool match(std::string_view p, std::string_view s, bool& skip_longer, int nesting) {
    if (nesting > kGlobMaxNesting) return false;
    size_t i = 0;  // into p
    size_t j = 0;  // into s
    while (i < p.size() && j < s.size()) {
        switch (p[i]) {
            case '*': {
                while (at(p, i + 1) == '*') ++i;  // "**" is "*"
                if (i + 1 == p.size()) return true;
                // Try the rest of the pattern at every position, shortest run first. The rest is
                // never tried against the empty remainder (Redis's `while (stringLen)`).
                const std::string_view rest = p.substr(i + 1);
                for (; j < s.size(); ++j) {
                    if (match(rest, s.substr(j), skip_longer, nesting + 1)) return true;
                    if (skip_longer) return false;
                }
                skip_longer = true;
                return false;
            }
            case '?':
                ++j;
                break;
            case '[': {
                ++i;
                const bool negate = at(p, i) == '^';
                if (negate) ++i;
                const char c = s[j];
                bool hit = false;
                for (;; ++i) {
                    if (at(p, i) == '\\' && p.size() - i >= 2) {
                        ++i;  // an escaped byte is always literal
                        if (p[i] == c) hit = true;
                    } else if (at(p, i) == ']') {
                        break;
                    } else if (i == p.size()) {
                        // Unterminated: the end of the pattern closes the class. Redis steps back
                        // one byte so that the common advance below lands on the end.
                        --i;
                        break;
                    } else if (p.size() - i >= 3 && p[i + 1] == '-') {
                        int lo = range_value(p[i]);
                        int hi = range_value(p[i + 2]);
                        if (lo > hi) {
                            const int t = lo;
                            lo = hi;
                            hi = t;
                        }
                        const int v = range_value(c);
                        if (v >= lo && v <= hi) hit = true;
                        i += 2;
                    } else if (p[i] == c) {
                        hit = true;
                    }
                }
                if (negate) hit = !hit;
                if (!hit) return false;
                ++j;
                break;
            }
            case '\\':
                if (p.size() - i >= 2) ++i;  // else: a trailing '\' is itself
                [[fallthrough]];
            default:
                if (p[i] != s[j]) return false;
                ++j;
                break;
        }
        ++i;
        if (j == s.size()) {
            while (at(p, i) == '*') ++i;  // trailing stars match the empty rest
            break;
        }
    }
    return i == p.size() && j == s.size();
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view s) {
    bool skip_longer = false;
    return match(pattern, s, skip_longer, 0);
}

}  // namespace sluice::apps::broker
