// apps/broker/glob.hpp: glob_match against Redis 7's stringmatchlen (util.c, nocase = 0), rule by
// rule and corner case by corner case, and its safeguards against abusive patterns.
#include <chrono>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "apps/broker/glob.hpp"

namespace sluice::test {
namespace {

using apps::broker::glob_match;
using namespace std::string_literals;

struct GlobCase {
    std::string pattern;
    std::string s;
    bool match;
};

// Each row is what Redis 7's stringmatchlen answers.
const GlobCase kCases[] = {
    // Literals: whole string, case sensitive.
    {"", "", true},
    {"", "a", false},
    {"a", "", false},
    {"hello", "hello", true},
    {"hello", "hell", false},
    {"hello", "hellox", false},
    {"Hello", "hello", false},
    // '*': any run; consecutive stars are one; a trailing star matches the empty rest.
    {"*", "anything", true},
    {"*", "", false},  // Redis's loop never starts on an empty string
    {"**", "", false},
    {"a*", "", false},
    {"a*", "a", true},
    {"a**", "a", true},
    {"a*b*", "a", false},
    {"h*o", "hello", true},
    {"h*o", "ho", true},
    {"h*o", "hellox", false},
    {"h***o", "hello", true},
    {"*o", "o", true},
    {"*a*", "banana", true},
    {"*a*", "bnn", false},
    {"news.*", "news.art", true},
    {"news.*", "news.", true},
    {"news.*", "news", false},
    {"a*b*c", "abxbxc", true},
    {"a*b", "axxbc", false},
    {"*?", "a", true},
    {"*?", "", false},
    {"?*", "a", true},
    // '?': exactly one byte.
    {"h?llo", "hello", true},
    {"h?llo", "hllo", false},
    {"?", "", false},
    {"??", "a", false},
    // Classes, negation, ranges.
    {"h[ae]llo", "hello", true},
    {"h[ae]llo", "hallo", true},
    {"h[ae]llo", "hillo", false},
    {"h[^e]llo", "hallo", true},
    {"h[^e]llo", "hello", false},
    {"h[a-b]llo", "hbllo", true},
    {"h[a-b]llo", "hcllo", false},
    {"[z-a]", "m", true},  // a reversed range: Redis swaps the ends
    {"[z-a]", "A", false},
    {"[a-]", "]", true},  // "a-]" is the range a..']' (swapped: ']'..'a'), unterminated
    {"[a-]", "_", true},
    {"[a-]", "-", false},
    {"[-a]", "-", true},  // a '-' first is literal
    {"[a-", "-", true},   // too short for a range: 'a' and '-'
    {"[a-", "b", false},
    {"[]", "]", false},  // ']' right after '[' closes an empty class (unlike POSIX)
    {"[]]", "]", false},
    {"[^]", "x", true},  // the empty class negated: any byte
    {"[^]", "", false},
    {"[\\]]", "]", true},     // an escaped ']'
    {"[\\a-z]", "b", false},  // "\a" is literal 'a', then '-' and 'z' are literals
    {"[\\a-z]", "-", true},
    {"[\\a-z]", "z", true},
    {"[a\\-z]", "m", false},  // an escaped '-' is no range
    {"[a\\-z]", "-", true},
    // An unterminated class ends at the end of the pattern.
    {"[abc", "b", true},
    {"[abc", "d", false},
    {"[abc", "bx", false},
    {"[", "[", false},
    {"[", "", false},
    {"[^", "x", true},
    {"[^", "xy", false},
    {"[^abc", "d", true},
    {"[^abc", "a", false},
    {"[\\", "\\", true},  // a lone '\' ending the class is literal
    {"[\\", "x", false},
    // Escapes outside classes; a trailing '\' is a literal backslash.
    {"\\*", "*", true},
    {"\\*", "a", false},
    {"\\?", "?", true},
    {"\\?", "x", false},
    {"\\[a]", "[a]", true},
    {"\\[a]", "a", false},
    {"\\a", "a", true},
    {"\\\\", "\\", true},
    {"\\", "\\", true},
    {"\\", "", false},
    {"a\\", "a\\", true},
    {"a\\", "a", false},
    {"*\\*", "abc*", true},
    {"*\\*", "abc", false},
    // Binary safe: NUL is an ordinary byte, in the string and in the pattern.
    {"a\0b"s, "a\0b"s, true},
    {"a\0b"s, "a\0c"s, false},
    {"a?b", "a\0b"s, true},
    {"[\0]"s, "\0"s, true},
    {"*", "\0\0"s, true},
    {"a", "a\0"s, false},
    // Range ends compare as signed chars (Redis's `int c = string[0]` on x86-64): [\x01-\xff] is
    // the range -1..1, so it holds \xff, \0 and \x01 but neither 'a' nor \x80.
    {"[\x01-\xff]", "\xff", true},
    {"[\x01-\xff]", "\0"s, true},
    {"[\x01-\xff]", "a", false},
    {"[\x01-\xff]", "\x80", false},
    {"[\x80-\xff]", "\x90", true},
};

TEST(Glob, MatchesRedisStringmatchlenTable) {
    for (const GlobCase& c : kCases)
        EXPECT_EQ(glob_match(c.pattern, c.s), c.match)
            << "pattern \"" << c.pattern << "\" (" << c.pattern.size() << " bytes) string \"" << c.s
            << "\" (" << c.s.size() << " bytes)";
}

// Only the view's bytes count: nothing past the end is read as part of the pattern.
TEST(Glob, RespectsViewBoundsNotTerminators) {
    const std::string buf = "ab*cd";
    EXPECT_TRUE(glob_match(std::string_view(buf).substr(0, 2), "ab"));
    EXPECT_FALSE(glob_match(std::string_view(buf).substr(0, 2), "abX"));
    EXPECT_TRUE(glob_match(std::string_view(buf).substr(0, 3), "abX"));
    const std::string cls = "[ab]";
    EXPECT_TRUE(glob_match(std::string_view(cls).substr(0, 3), "b"));  // "[ab": unterminated
    EXPECT_FALSE(glob_match(std::string_view(cls).substr(0, 3), "]"));
}

// Redis 7 (stringmatchlen_impl's `nesting`): past 1000 nested stars the match fails. A trailing
// star does not nest (it matches at once).
TEST(Glob, GivesUpPastRedisNestingLimit) {
    std::string p1000, p1001;
    for (int i = 0; i < 1000; ++i) p1000 += "*a";
    p1001 = p1000 + "*a";
    const std::string a1000(1000, 'a'), a1001(1001, 'a');
    EXPECT_TRUE(glob_match(p1000, a1000));
    EXPECT_FALSE(glob_match(p1001, a1001)) << "1001 nested stars: Redis answers no match";
    EXPECT_TRUE(glob_match(p1000 + "*", a1000 + "b"));
}

// Without Redis's skipLongerMatches this would try every way of placing nine stars in 100000
// bytes; with it, the first exhausted star ends the search.
TEST(Glob, PathologicalPatternFinishesFast) {
    const std::string s(100000, 'a');
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*b", s));
    EXPECT_TRUE(glob_match("*a*a*a*a*a*a*a*a*a*", s));
    std::string many;
    for (int i = 0; i < 500; ++i) many += "*a";
    EXPECT_FALSE(glob_match(many + "*b", std::string(20000, 'a')));
    EXPECT_FALSE(glob_match("*?*?*?*?*?*?*?*?*x", s));
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    EXPECT_LT(ms, 1000) << "took " << ms << " ms";
}

// A later star is retried at longer runs when an earlier part matched: the cutoff only prunes
// after a full failure.
TEST(Glob, BacktracksWhereAMatchExists) {
    EXPECT_TRUE(glob_match("*ab*abc", "abxababc"));
    EXPECT_TRUE(glob_match("*a?c*d", "aaxcabcd"));
    EXPECT_TRUE(glob_match("a*a*a*b", "aaaaaaaab"));
    EXPECT_FALSE(glob_match("a*a*a*b", "aaaaaaaa"));
}

}  // namespace
}  // namespace sluice::test
