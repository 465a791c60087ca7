// apps/broker/topics.hpp: one core's subscriptions and deliveries (Redis 7 pubsub.c semantics),
// the directory of the other cores' subscriptions, PUBSUB's answers, and memory under churn.
#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "apps/broker/topics.hpp"

namespace sluice::test {
namespace {

using apps::broker::Kind;
using apps::broker::SubId;
using apps::broker::Topics;

struct Call {
    SubId sub;
    const std::string* pattern;
};

std::vector<Call> deliveries(const Topics& t, Kind k, std::string_view channel) {
    std::vector<Call> v;
    const uint32_t n = t.deliver(k, channel, [&](SubId s, const std::string* p) {
        v.push_back(Call{s, p});
    });
    EXPECT_EQ(n, v.size());
    EXPECT_EQ(t.local_count(k, channel), n);
    return v;
}

std::multiset<std::string> names(const Topics& t, Kind k, const std::string_view* pattern) {
    std::multiset<std::string> v;
    t.channels(k, pattern, [&](std::string_view n) { v.emplace(n); });
    return v;
}

// Cores 0..n-1, each announcing its subscription changes to the others' directories, as the
// broker does over the bus.
struct Cluster {
    std::vector<Topics> t;
    explicit Cluster(unsigned n) {
        for (unsigned c = 0; c < n; ++c) t.emplace_back(c, n);
    }
    bool sub(unsigned c, Kind k, std::string_view name, SubId s) {
        if (!t[c].subscribe(k, name, s)) return false;
        for (unsigned o = 0; o < t.size(); ++o)
            if (o != c) t[o].remote_update(c, k, name, +1);
        return true;
    }
    bool unsub(unsigned c, Kind k, std::string_view name, SubId s) {
        if (!t[c].unsubscribe(k, name, s)) return false;
        for (unsigned o = 0; o < t.size(); ++o)
            if (o != c) t[o].remote_update(c, k, name, -1);
        return true;
    }
    // PUBLISH's reply on core c.
    uint32_t publish_count(unsigned c, Kind k, std::string_view ch) const {
        return t[c].local_count(k, ch) + t[c].remote_count(k, ch);
    }
};

// Redis: a repeated SUBSCRIBE adds nothing; UNSUBSCRIBE of what is not subscribed changes nothing.
TEST(Topics, SubscribeAndUnsubscribeAreIdempotent) {
    Topics t;
    EXPECT_TRUE(t.subscribe(Kind::channel, "news", 1));
    EXPECT_FALSE(t.subscribe(Kind::channel, "news", 1));
    EXPECT_TRUE(t.subscribe(Kind::channel, "news", 2));
    EXPECT_TRUE(t.subscribe(Kind::pattern, "n*", 1));
    EXPECT_FALSE(t.subscribe(Kind::pattern, "n*", 1));
    EXPECT_EQ(t.local_subscriptions(Kind::channel), 2u);
    EXPECT_EQ(t.local_subscriptions(Kind::pattern), 1u);
    EXPECT_EQ(t.local_count(Kind::channel, "news"), 3u);

    EXPECT_FALSE(t.unsubscribe(Kind::channel, "news", 3));   // not a subscriber
    EXPECT_FALSE(t.unsubscribe(Kind::channel, "other", 1));  // no such channel
    EXPECT_FALSE(t.unsubscribe(Kind::shard, "news", 1));     // another kind
    EXPECT_FALSE(t.unsubscribe(Kind::pattern, "news", 1));
    EXPECT_TRUE(t.unsubscribe(Kind::channel, "news", 1));
    EXPECT_FALSE(t.unsubscribe(Kind::channel, "news", 1));
    EXPECT_EQ(t.local_count(Kind::channel, "news"), 2u);  // 2 on the channel, 1 on "n*"
    EXPECT_EQ(t.local_names(Kind::channel), 1u);
    EXPECT_TRUE(t.unsubscribe(Kind::channel, "news", 2));
    EXPECT_TRUE(t.unsubscribe(Kind::pattern, "n*", 1));
    EXPECT_FALSE(t.unsubscribe(Kind::pattern, "n*", 1));
    EXPECT_EQ(t.local_names(Kind::channel), 0u);
    EXPECT_EQ(t.local_names(Kind::pattern), 0u);
    EXPECT_EQ(t.local_subscriptions(Kind::channel), 0u);
    EXPECT_EQ(t.local_count(Kind::channel, "news"), 0u);
    EXPECT_EQ(t.footprint(), 0u);
}

// Redis 7 pubsubPublishMessage: the channel's subscribers, then each matching pattern's; one
// delivery per (subscription, match), so a client can get one message and two pmessages.
TEST(Topics, ChannelAndTwoMatchingPatternsGiveThreeCalls) {
    Topics t;
    ASSERT_TRUE(t.subscribe(Kind::channel, "news.art", 7));
    ASSERT_TRUE(t.subscribe(Kind::pattern, "news.*", 7));
    ASSERT_TRUE(t.subscribe(Kind::pattern, "*.art", 7));
    ASSERT_TRUE(t.subscribe(Kind::pattern, "sport.*", 7));  // does not match
    ASSERT_TRUE(t.subscribe(Kind::pattern, "*.art", 8));
    ASSERT_TRUE(t.subscribe(Kind::channel, "news.tech", 9));

    const std::vector<Call> v = deliveries(t, Kind::channel, "news.art");
    ASSERT_EQ(v.size(), 4u);
    EXPECT_EQ(v[0].sub, 7u);
    EXPECT_EQ(v[0].pattern, nullptr) << "channel subscribers first";
    std::multiset<std::pair<SubId, std::string>> pm;
    for (size_t i = 1; i < v.size(); ++i) {
        ASSERT_NE(v[i].pattern, nullptr);
        pm.emplace(v[i].sub, *v[i].pattern);
    }
    const std::multiset<std::pair<SubId, std::string>> want = {
        {7, "news.*"}, {7, "*.art"}, {8, "*.art"}};
    EXPECT_EQ(pm, want);
    EXPECT_EQ(std::count_if(v.begin(), v.end(), [](const Call& c) { return c.sub == 7; }), 3);

    // The same subscriber on one pattern twice is still one delivery.
    EXPECT_FALSE(t.subscribe(Kind::pattern, "news.*", 7));
    EXPECT_EQ(t.local_count(Kind::channel, "news.art"), 4u);
    EXPECT_EQ(t.local_count(Kind::channel, "news.tech"), 2u);  // 9, and 7 by "news.*"
    EXPECT_EQ(t.local_count(Kind::channel, "nothing"), 0u);
    EXPECT_EQ(t.deliver(Kind::pattern, "news.*", [](SubId, const std::string*) {}), 0u);
}

// SSUBSCRIBE'd shard channels and SUBSCRIBE'd channels are separate namespaces, and patterns
// never match shard channels (SPUBLISH reaches shard subscribers only).
TEST(Topics, ShardChannelsAreSeparateFromChannels) {
    Topics t;
    ASSERT_TRUE(t.subscribe(Kind::shard, "x", 1));
    ASSERT_TRUE(t.subscribe(Kind::channel, "x", 2));
    ASSERT_TRUE(t.subscribe(Kind::pattern, "*", 3));
    ASSERT_TRUE(t.subscribe(Kind::shard, "x", 2));  // 2 on both: no clash

    std::vector<Call> s = deliveries(t, Kind::shard, "x");
    ASSERT_EQ(s.size(), 2u);
    std::sort(s.begin(), s.end(), [](const Call& a, const Call& b) { return a.sub < b.sub; });
    EXPECT_EQ(s[0].sub, 1u);
    EXPECT_EQ(s[1].sub, 2u);
    EXPECT_EQ(s[0].pattern, nullptr);
    EXPECT_EQ(s[1].pattern, nullptr);

    const std::vector<Call> c = deliveries(t, Kind::channel, "x");
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(c[0].sub, 2u);
    EXPECT_EQ(c[1].sub, 3u);
    ASSERT_NE(c[1].pattern, nullptr);
    EXPECT_EQ(*c[1].pattern, "*");

    EXPECT_EQ(t.numsub(Kind::shard, "x"), 2u);
    EXPECT_EQ(t.numsub(Kind::channel, "x"), 1u) << "NUMSUB ignores pattern subscribers";
    EXPECT_EQ(names(t, Kind::shard, nullptr), std::multiset<std::string>{"x"});
    EXPECT_EQ(names(t, Kind::channel, nullptr), std::multiset<std::string>{"x"});
    EXPECT_TRUE(t.unsubscribe(Kind::channel, "x", 2));
    EXPECT_EQ(t.local_count(Kind::shard, "x"), 2u);
    EXPECT_TRUE(names(t, Kind::channel, nullptr).empty());
    EXPECT_EQ(t.local_subscriptions(Kind::shard), 2u);
    EXPECT_EQ(t.local_subscriptions(Kind::channel), 0u);
}

// Swap-remove keeps every other subscriber, once.
TEST(Topics, UnsubscribingFromACrowdKeepsTheRest) {
    Topics t;
    for (SubId s = 0; s < 1000; ++s) ASSERT_TRUE(t.subscribe(Kind::channel, "c", s));
    for (SubId s = 0; s < 1000; s += 2) ASSERT_TRUE(t.unsubscribe(Kind::channel, "c", s));
    for (SubId s = 0; s < 1000; s += 2) ASSERT_FALSE(t.unsubscribe(Kind::channel, "c", s));
    std::vector<SubId> got;
    for (const Call& c : deliveries(t, Kind::channel, "c")) got.push_back(c.sub);
    std::sort(got.begin(), got.end());
    std::vector<SubId> want;
    for (SubId s = 1; s < 1000; s += 2) want.push_back(s);
    EXPECT_EQ(got, want);
    for (SubId s = 1; s < 1000; s += 2) ASSERT_FALSE(t.subscribe(Kind::channel, "c", s));
    for (SubId s = 999; s < 1000; s -= 2) ASSERT_TRUE(t.unsubscribe(Kind::channel, "c", s));
    EXPECT_EQ(t.local_names(Kind::channel), 0u);
    EXPECT_EQ(t.footprint(), 0u);
}

// deliver(..., ahead): each of the channel's subscribers is announced once, kAhead calls before
// its own (or from the start, for the first kAhead), so what the call touches can be fetched.
TEST(Topics, DeliverAnnouncesEachSubscriberAheadOfItsCall) {
    for (SubId n : {0u, 1u, Topics::kAhead, Topics::kAhead + 1, 100u}) {
        Topics t;
        for (SubId s = 0; s < n; ++s) ASSERT_TRUE(t.subscribe(Kind::channel, "c", 10 + s));
        std::vector<SubId> calls, announced;
        std::vector<size_t> lead;  // calls made by the time each subscriber was announced
        const uint32_t got = t.deliver(
            Kind::channel, "c", [&](SubId s, const std::string*) { calls.push_back(s); },
            [&](SubId s) {
                announced.push_back(s);
                lead.push_back(calls.size());
            });
        ASSERT_EQ(got, n);
        ASSERT_EQ(calls.size(), n);
        EXPECT_EQ(announced, calls) << n << " subscribers: each once, in call order";
        for (size_t i = 0; i < lead.size(); ++i)
            EXPECT_EQ(lead[i], i < Topics::kAhead ? 0 : i - Topics::kAhead) << "subscriber " << i;
    }
}

// Three cores: counts for PUBLISH's reply, which cores get the message, and PUBSUB, all cores'.
TEST(Topics, DirectoryAcrossThreeCores) {
    Cluster k(3);
    ASSERT_TRUE(k.sub(0, Kind::channel, "news", 1));
    ASSERT_TRUE(k.sub(1, Kind::channel, "news", 1));
    ASSERT_TRUE(k.sub(1, Kind::channel, "news", 2));
    ASSERT_TRUE(k.sub(2, Kind::pattern, "n*", 5));
    ASSERT_TRUE(k.sub(2, Kind::pattern, "n*", 6));
    ASSERT_TRUE(k.sub(1, Kind::pattern, "n*", 3));
    ASSERT_TRUE(k.sub(1, Kind::pattern, "*s*", 3));
    ASSERT_TRUE(k.sub(2, Kind::channel, "sport", 9));
    ASSERT_FALSE(k.sub(1, Kind::channel, "news", 2));  // no second announcement
    ASSERT_TRUE(k.sub(0, Kind::shard, "news", 4));

    // "news": core 0: 1; core 1: 1, 2, n* (3), *s* (3); core 2: n* (5, 6). 7 deliveries in all,
    // whichever core publishes.
    for (unsigned c = 0; c < 3; ++c) EXPECT_EQ(k.publish_count(c, Kind::channel, "news"), 7u) << c;
    EXPECT_EQ(k.t[0].local_count(Kind::channel, "news"), 1u);
    EXPECT_EQ(k.t[0].remote_count(Kind::channel, "news"), 6u);
    EXPECT_EQ(k.t[2].remote_count(Kind::channel, "news"), 5u);
    EXPECT_EQ(k.publish_count(0, Kind::channel, "sport"), 2u);  // 9 on core 2, "*s*" on core 1
    EXPECT_EQ(k.publish_count(1, Kind::channel, "nope"), 3u);   // n* (3, 5, 6)
    EXPECT_EQ(k.publish_count(1, Kind::channel, "x"), 0u);
    EXPECT_EQ(k.publish_count(1, Kind::shard, "news"), 1u);  // only the shard subscriber
    EXPECT_EQ(k.t[1].remote_count(Kind::shard, "sport"), 0u);

    EXPECT_TRUE(k.t[0].core_interested(1, Kind::channel, "news"));
    EXPECT_TRUE(k.t[0].core_interested(2, Kind::channel, "news"));  // by pattern only
    EXPECT_TRUE(k.t[0].core_interested(0, Kind::channel, "news"));  // itself: local_count
    EXPECT_FALSE(k.t[0].core_interested(0, Kind::channel, "sport"));
    EXPECT_TRUE(k.t[0].core_interested(1, Kind::channel, "sport"));  // "*s*"
    EXPECT_TRUE(k.t[0].core_interested(1, Kind::channel, "spor"));   // "*s*"
    EXPECT_FALSE(k.t[0].core_interested(2, Kind::channel, "spor"));  // "sport", "n*": no
    EXPECT_TRUE(k.t[0].core_interested(2, Kind::channel, "nope"));
    EXPECT_FALSE(k.t[0].core_interested(1, Kind::channel, "xyz"));
    EXPECT_FALSE(k.t[1].core_interested(0, Kind::channel, "sport"));
    EXPECT_FALSE(k.t[1].core_interested(2, Kind::shard, "news"));
    EXPECT_TRUE(k.t[1].core_interested(0, Kind::shard, "news"));
    EXPECT_FALSE(k.t[1].core_interested(7, Kind::channel, "news"));  // no such core

    EXPECT_EQ(k.t[2].numsub(Kind::channel, "news"), 3u);
    EXPECT_EQ(k.t[0].numsub(Kind::channel, "sport"), 1u);
    EXPECT_EQ(k.t[0].numsub(Kind::channel, "nope"), 0u);
    EXPECT_EQ(k.t[0].numsub(Kind::shard, "news"), 1u);
    EXPECT_EQ(k.t[0].numsub(Kind::pattern, "n*"), 3u);
    for (unsigned c = 0; c < 3; ++c) EXPECT_EQ(k.t[c].numpat(), 2u) << "n* and *s*, once each";

    const std::multiset<std::string> all = {"news", "sport"};
    for (unsigned c = 0; c < 3; ++c) EXPECT_EQ(names(k.t[c], Kind::channel, nullptr), all) << c;
    const std::string_view glob_s = "s*", glob_none = "", glob_all = "*";
    EXPECT_EQ(names(k.t[0], Kind::channel, &glob_s), std::multiset<std::string>{"sport"});
    EXPECT_TRUE(names(k.t[0], Kind::channel, &glob_none).empty());
    EXPECT_EQ(names(k.t[1], Kind::channel, &glob_all), all);
    EXPECT_EQ(names(k.t[2], Kind::shard, nullptr), std::multiset<std::string>{"news"});
    EXPECT_TRUE(names(k.t[2], Kind::shard, &glob_s).empty());

    // Leaving: counts follow, and what is gone everywhere is gone from the directory.
    ASSERT_TRUE(k.unsub(1, Kind::pattern, "n*", 3));
    EXPECT_EQ(k.publish_count(0, Kind::channel, "news"), 6u);
    EXPECT_EQ(k.t[0].numpat(), 2u);  // n* still on core 2
    ASSERT_TRUE(k.unsub(2, Kind::pattern, "n*", 5));
    ASSERT_TRUE(k.unsub(2, Kind::pattern, "n*", 6));
    EXPECT_EQ(k.t[0].numpat(), 1u);
    EXPECT_FALSE(k.t[0].core_interested(2, Kind::channel, "news"));
    EXPECT_EQ(k.publish_count(0, Kind::channel, "news"), 4u);
    ASSERT_TRUE(k.unsub(2, Kind::channel, "sport", 9));
    EXPECT_EQ(names(k.t[0], Kind::channel, nullptr), std::multiset<std::string>{"news"});
    EXPECT_EQ(k.t[0].remote_names(Kind::channel), 1u);
    EXPECT_EQ(k.t[0].remote_names(Kind::pattern), 1u);
}

// The pattern "n*" lives on cores 1 and 2 above; here a pattern on one core only, so that
// core_interested distinguishes the cores.
TEST(Topics, CoreInterestedByPatternOnlyWhereThePatternIs) {
    Cluster k(3);
    ASSERT_TRUE(k.sub(2, Kind::pattern, "a?", 1));
    EXPECT_TRUE(k.t[0].core_interested(2, Kind::channel, "ab"));
    EXPECT_FALSE(k.t[0].core_interested(1, Kind::channel, "ab"));
    EXPECT_FALSE(k.t[0].core_interested(2, Kind::channel, "abc"));
    EXPECT_FALSE(k.t[0].core_interested(2, Kind::shard, "ab"));
    EXPECT_EQ(k.t[0].remote_count(Kind::channel, "ab"), 1u);
    EXPECT_EQ(k.t[0].remote_count(Kind::shard, "ab"), 0u);
}

// remote_fanout: one pass giving each interested core its deliveries, summing to remote_count.
TEST(Topics, RemoteFanoutPerCore) {
    Cluster k(4);
    ASSERT_TRUE(k.sub(1, Kind::channel, "c", 1));
    ASSERT_TRUE(k.sub(1, Kind::pattern, "c*", 1));
    ASSERT_TRUE(k.sub(3, Kind::pattern, "?", 2));
    ASSERT_TRUE(k.sub(3, Kind::pattern, "[a-c]", 2));
    ASSERT_TRUE(k.sub(0, Kind::channel, "c", 5));  // local to core 0: not in its fan-out
    for (int round = 0; round < 2; ++round) {      // the per-core sums are reset after each call
        std::map<unsigned, uint32_t> got;
        const uint32_t n = k.t[0].remote_fanout(Kind::channel, "c", [&](unsigned c, uint32_t d) {
            EXPECT_TRUE(got.emplace(c, d).second) << "core " << c << " twice";
        });
        EXPECT_EQ(n, 4u);
        EXPECT_EQ(n, k.t[0].remote_count(Kind::channel, "c"));
        EXPECT_EQ(got, (std::map<unsigned, uint32_t>{{1, 2}, {3, 2}}));
    }
    std::map<unsigned, uint32_t> got;
    EXPECT_EQ(k.t[3].remote_fanout(Kind::channel, "c", [&](unsigned c, uint32_t d) { got[c] = d; }),
              3u);
    EXPECT_EQ(got, (std::map<unsigned, uint32_t>{{0, 1}, {1, 2}}));
    EXPECT_EQ(k.t[0].remote_fanout(Kind::shard, "c", [](unsigned, uint32_t) { FAIL(); }), 0u);
    EXPECT_EQ(k.t[0].remote_fanout(Kind::channel, "zz", [](unsigned, uint32_t) { FAIL(); }), 0u);
}

// NUMPAT counts distinct patterns, not subscriptions (Redis 7: dictSize(server.pubsub_patterns)).
TEST(Topics, NumpatCountsDistinctPatternsOverAllCores) {
    Cluster k(3);
    ASSERT_TRUE(k.sub(0, Kind::pattern, "a*", 1));
    ASSERT_TRUE(k.sub(0, Kind::pattern, "a*", 2));
    ASSERT_TRUE(k.sub(1, Kind::pattern, "a*", 1));
    ASSERT_TRUE(k.sub(2, Kind::pattern, "b*", 1));
    for (unsigned c = 0; c < 3; ++c) EXPECT_EQ(k.t[c].numpat(), 2u);
    ASSERT_TRUE(k.unsub(0, Kind::pattern, "a*", 1));
    ASSERT_TRUE(k.unsub(0, Kind::pattern, "a*", 2));
    for (unsigned c = 0; c < 3; ++c) EXPECT_EQ(k.t[c].numpat(), 2u);
    ASSERT_TRUE(k.unsub(1, Kind::pattern, "a*", 1));
    for (unsigned c = 0; c < 3; ++c) EXPECT_EQ(k.t[c].numpat(), 1u);
}

// "" is a channel name and a glob (matching only ""): a null filter and an empty one differ.
TEST(Topics, EmptyPatternFilterIsNotNoFilter) {
    Topics t;
    ASSERT_TRUE(t.subscribe(Kind::channel, "", 1));
    ASSERT_TRUE(t.subscribe(Kind::channel, "a", 1));
    const std::string_view empty = "";
    EXPECT_EQ(names(t, Kind::channel, nullptr), (std::multiset<std::string>{"", "a"}));
    EXPECT_EQ(names(t, Kind::channel, &empty), std::multiset<std::string>{""});
    EXPECT_EQ(t.local_count(Kind::channel, ""), 1u);
}

// A name subscribed on this core and another is listed once.
TEST(Topics, ChannelsListsANameOnce) {
    Cluster k(2);
    ASSERT_TRUE(k.sub(0, Kind::channel, "both", 1));
    ASSERT_TRUE(k.sub(1, Kind::channel, "both", 1));
    ASSERT_TRUE(k.sub(1, Kind::channel, "one", 1));
    EXPECT_EQ(names(k.t[0], Kind::channel, nullptr), (std::multiset<std::string>{"both", "one"}));
    EXPECT_EQ(names(k.t[1], Kind::channel, nullptr), (std::multiset<std::string>{"both", "one"}));
}

#ifdef NDEBUG
// Counts never go negative: an unexpected loss is ignored (asserted in debug builds, so this runs
// in release builds only).
TEST(Topics, UnexpectedRemoteLossIsIgnored) {
    Topics t(0, 3);
    t.remote_update(1, Kind::channel, "x", -1);
    t.remote_update(1, Kind::pattern, "x*", -1);
    EXPECT_EQ(t.remote_names(Kind::channel), 0u);
    EXPECT_EQ(t.remote_names(Kind::pattern), 0u);
    t.remote_update(1, Kind::channel, "x", +1);
    t.remote_update(2, Kind::channel, "x", -1);  // core 2 never had it
    EXPECT_EQ(t.remote_count(Kind::channel, "x"), 1u);
    t.remote_update(1, Kind::channel, "x", -1);
    t.remote_update(1, Kind::channel, "x", -1);
    EXPECT_EQ(t.remote_count(Kind::channel, "x"), 0u);
    EXPECT_EQ(t.remote_names(Kind::channel), 0u);
    t.remote_update(1, Kind::channel, "x", +1);
    EXPECT_EQ(t.remote_count(Kind::channel, "x"), 1u) << "not 0: the earlier losses left no debt";
    t.remote_update(0, Kind::channel, "x", +1);  // this core itself: ignored
    t.remote_update(3, Kind::channel, "x", +1);  // no such core: ignored
    EXPECT_EQ(t.remote_count(Kind::channel, "x"), 1u);
    EXPECT_EQ(t.numsub(Kind::channel, "x"), 1u);
}
#endif

// 100k random subscribe/unsubscribe on three cores, checked against a model; everything removed
// at the end leaves nothing behind.
TEST(Topics, ChurnLeavesNothingBehind) {
    Cluster k(3);
    using Key = std::tuple<unsigned, Kind, std::string, SubId>;
    std::set<Key> model;
    std::mt19937 rng(42);
    const Kind kinds[] = {Kind::channel, Kind::pattern, Kind::shard};
    for (int i = 0; i < 100000; ++i) {
        const unsigned c = rng() % 3;
        const Kind kind = kinds[rng() % 3];
        // Names come and go: most are used a few times only.
        std::string name = kind == Kind::pattern ? "p" : "c";
        name += std::to_string(rng() % 3000);
        if (kind == Kind::pattern) name += '*';
        const SubId s = rng() % 16;
        const Key key{c, kind, name, s};
        if (rng() % 2) {
            ASSERT_EQ(k.sub(c, kind, name, s), model.insert(key).second) << i;
        } else {
            ASSERT_EQ(k.unsub(c, kind, name, s), model.erase(key) == 1) << i;
        }
        if (i % 10000 == 0) {
            for (unsigned cc = 0; cc < 3; ++cc)
                for (Kind kk : kinds) {
                    const auto n = std::count_if(model.begin(), model.end(), [&](const Key& m) {
                        return std::get<0>(m) == cc && std::get<1>(m) == kk;
                    });
                    ASSERT_EQ(k.t[cc].local_subscriptions(kk), uint64_t(n));
                }
            const auto on_c5 = std::count_if(model.begin(), model.end(), [](const Key& m) {
                return std::get<1>(m) == Kind::channel && std::get<2>(m) == "c5";
            });
            ASSERT_EQ(k.t[0].numsub(Kind::channel, "c5"), uint64_t(on_c5));
        }
    }
    EXPECT_GT(model.size(), 1000u);
    size_t peak = 0;
    for (const Topics& t : k.t) peak += t.footprint();
    EXPECT_GT(peak, model.size());
    for (const Key& key : model)
        ASSERT_TRUE(
            k.unsub(std::get<0>(key), std::get<1>(key), std::get<2>(key), std::get<3>(key)));
    for (const Topics& t : k.t) {
        for (Kind kk : kinds) {
            EXPECT_EQ(t.local_names(kk), 0u);
            EXPECT_EQ(t.remote_names(kk), 0u);
            EXPECT_EQ(t.local_subscriptions(kk), 0u);
        }
        EXPECT_EQ(t.numpat(), 0u);
        EXPECT_EQ(t.footprint(), 0u);
    }
}

// Every subscription to a fresh name, then its removal: 100k names, none kept.
TEST(Topics, ChurnOfDistinctNamesFreesEachName) {
    Topics t(0, 2);
    for (uint32_t i = 0; i < 100000; ++i) {
        std::string name = "ch:";
        name += std::to_string(i);
        const Kind kind = i % 3 == 0 ? Kind::pattern : (i % 3 == 1 ? Kind::channel : Kind::shard);
        ASSERT_TRUE(t.subscribe(kind, name, i));
        t.remote_update(1, kind, name, +1);
        ASSERT_EQ(t.numsub(kind, name), 2u);
        ASSERT_TRUE(t.unsubscribe(kind, name, i));
        t.remote_update(1, kind, name, -1);
        ASSERT_EQ(t.numsub(kind, name), 0u);
    }
    EXPECT_EQ(t.footprint(), 0u);
}

}  // namespace
}  // namespace sluice::test
