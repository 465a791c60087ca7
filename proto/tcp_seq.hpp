// TCP sequence-number arithmetic, modulo 2^32 (RFC 9293 3.4): "a < b" means a precedes b in
// the 2^31 window before b. Every comparison of sequence or acknowledgment numbers goes through
// these, so wraparound is handled in one place.
#pragma once

#include <cstdint>

namespace sluice::proto {

constexpr bool seq_lt(uint32_t a, uint32_t b) {
    return int32_t(a - b) < 0;
}
constexpr bool seq_leq(uint32_t a, uint32_t b) {
    return int32_t(a - b) <= 0;
}
constexpr bool seq_gt(uint32_t a, uint32_t b) {
    return int32_t(a - b) > 0;
}
constexpr bool seq_geq(uint32_t a, uint32_t b) {
    return int32_t(a - b) >= 0;
}
constexpr uint32_t seq_max(uint32_t a, uint32_t b) {
    return seq_gt(a, b) ? a : b;
}
constexpr uint32_t seq_min(uint32_t a, uint32_t b) {
    return seq_lt(a, b) ? a : b;
}
// lo <= x < hi, modulo 2^32.
constexpr bool seq_in(uint32_t x, uint32_t lo, uint32_t hi) {
    return x - lo < hi - lo;
}

static_assert(seq_lt(0xfffffff0u, 0x10u), "wraparound");
static_assert(seq_gt(0x10u, 0xfffffff0u), "wraparound");
static_assert(seq_in(2u, 0xfffffffeu, 5u), "wraparound");

}  // namespace sluice::proto
