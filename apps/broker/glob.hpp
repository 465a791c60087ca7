// Glob-style matching with Redis's semantics: the patterns of PSUBSCRIBE, PUBSUB CHANNELS and
// PUBSUB SHARDCHANNELS (Redis 7 util.c, stringmatchlen with nocase = 0).
#pragma once

#include <string_view>

namespace sluice::apps::broker {

// Redis 7's stringmatchlen_impl gives up (no match) past this many nested '*' expansions
// ("protection against abusive patterns"): a pattern with more than 1000 '*' groups that are not
// at its end never matches.
inline constexpr int kGlobMaxNesting = 1000;

// Does `s` match the glob `pattern`, exactly as Redis 7's stringmatchlen(pattern, plen, s, slen,
// nocase = 0)? Binary safe (NUL bytes are ordinary bytes), case sensitive, no allocation.
//   *      any run of bytes; consecutive stars are one star; a trailing star matches the rest.
//          A star is only tried against runs that leave the rest of the pattern at least one byte
//          (every other token consumes one), so "*" does not match the empty string: Redis's
//          loop runs only while both pattern and string are non-empty.
//   ?      any one byte.
//   [...]  a class: bytes, ranges a-z (a reversed range z-a is the same range: Redis swaps the
//          ends; the ends compare as signed chars, as Redis built for x86-64 does), \x for a
//          literal x; [^...] negates. "[]" is an empty class (matches nothing), "[^]" any byte.
//          An unterminated class ends at the end of the pattern: "[ab" is "[ab]", "[" matches
//          nothing, "[^" any byte.
//   \x     the literal x; a lone '\' at the end of the pattern is a literal backslash (the same
//          inside a class: "[\" is "[\\]").
// The search is linear in practice: once the rest of a pattern after a star failed at every
// position, no earlier star is retried with a longer run (Redis's skipLongerMatches), so
// "*a*a*a*a*b" against a long run of 'a's fails in O(length x stars), not exponentially.
bool glob_match(std::string_view pattern, std::string_view s);

}  // namespace sluice::apps::broker
