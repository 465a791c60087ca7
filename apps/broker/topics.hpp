// The topic engine: one core's publish/subscribe state, protocol-agnostic (no RESP, no TCP).
//
//  - Local subscriptions: channel, pattern and shard-channel names -> the subscribers (client
//    slots, SubId) on this core, as Redis 7 keeps server.pubsub_channels, server.pubsub_patterns
//    and the shard channels (pubsub.c), each name's subscribers in a vector.
//  - The directory: what the other cores have subscribed, as counts per (core, name), kept up to
//    date by the broker from bus messages (remote_update). It answers PUBLISH's reply (the number
//    of deliveries on all cores), which cores a message must be sent to, and PUBSUB.
//
// Publishing (deliver, local_count, remote_count, remote_fanout, core_interested) allocates
// nothing: names are looked up by string_view (transparent hashing, no std::string built), and
// patterns are matched in place (glob_match). Subscribing and unsubscribing allocate; a name's
// memory is freed when its last subscriber goes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "apps/broker/glob.hpp"

namespace sluice::apps::broker {

using SubId = uint32_t;  // a subscriber (client slot) on this core

enum class Kind : uint8_t { channel, pattern, shard };  // SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE

// std::hash of a string_view, for std::string keys looked up by string_view (C++20 heterogeneous
// lookup: the hash and std::equal_to<> are both transparent).
struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};
template <class V>
using NameMap = std::unordered_map<std::string, V, NameHash, std::equal_to<>>;

class Topics {
  public:
    explicit Topics(unsigned core = 0, unsigned n_cores = 1);

    unsigned core() const { return core_; }
    unsigned n_cores() const { return n_cores_; }

    // ---- local subscriptions ----------------------------------------------------------------
    // true if added; false if `s` already had that subscription (no change: Redis replies to a
    // repeated SUBSCRIBE without adding anything, pubsub.c pubsubSubscribeChannel).
    bool subscribe(Kind k, std::string_view name, SubId s);
    // true if `s` had that subscription (now gone); false: no change.
    bool unsubscribe(Kind k, std::string_view name, SubId s);

    // The local deliveries of a message published on `channel`, made as calls
    // f(SubId, const std::string* pattern), pattern nullptr for a channel (or shard) match.
    //   Kind::channel: the channel's subscribers, then for each pattern that matches it, the
    //     pattern's subscribers (Redis 7 pubsubPublishMessage: channel first, then the pattern
    //     dict). A subscriber matched by the channel and by a pattern, or by two patterns, gets one
    //     call for each, as in Redis (one "message" plus one "pmessage" each).
    //   Kind::shard: the shard channel's subscribers only (SPUBLISH).
    //   Kind::pattern: nothing (a message is published on a channel, not a pattern).
    // Order among one name's subscribers is unspecified (unsubscribing swaps the last one into the
    // leaver's place; Redis 7 keeps them in a dict). Returns the number of calls.
    // `f` must not subscribe or unsubscribe anything on this object (the vectors being walked
    // would change under it): the broker defers subscription changes to after the delivery.
    template <class F>
    uint32_t deliver(Kind k, std::string_view channel, F&& f) const {
        return deliver(k, channel, f, [](SubId) {});
    }
    // The same, calling ahead(s) for the channel's subscriber kAhead calls later before each
    // call to one of them (to prefetch what f will touch); pattern subscribers are not announced.
    static constexpr uint32_t kAhead = 6;
    template <class F, class A>
    uint32_t deliver(Kind k, std::string_view channel, F&& f, A&& ahead) const;
    // The number of calls deliver() would make; `by_pattern`, when given, gets how many of
    // them are for patterns.
    uint32_t local_count(Kind k, std::string_view channel, uint32_t* by_pattern = nullptr) const;

    // ---- the directory of the other cores ---------------------------------------------------
    // Core `c` gained (delta > 0) or lost (delta < 0) `delta` subscribers to `name` of kind `k`.
    // A count never goes below zero: losing more than it has (an unexpected -1) is clamped, and
    // asserted in debug builds; so are updates about this core itself or a core out of range
    // (ignored).
    void remote_update(unsigned c, Kind k, std::string_view name, int delta);
    // The deliveries the other cores will make for a message published on `channel`: their
    // subscribers of `channel` plus, for Kind::channel, the subscriber count of each of their
    // patterns that matches it. PUBLISH replies local_count + remote_count.
    uint32_t remote_count(Kind k, std::string_view channel) const;
    // Does core `c` have anyone to deliver `channel` to (the broker sends it the message only
    // then)? For this core itself: local_count > 0.
    bool core_interested(unsigned c, Kind k, std::string_view channel) const;
    // remote_count and core_interested in one pass (one lookup, one scan of the patterns):
    // f(unsigned core, uint32_t deliveries) for each other core with deliveries > 0, in core
    // order; returns the sum (remote_count).
    template <class F>
    uint32_t remote_fanout(Kind k, std::string_view channel, F&& f) const;

    // ---- PUBSUB -----------------------------------------------------------------------------
    // PUBSUB CHANNELS [pattern] (Kind::channel) / SHARDCHANNELS [pattern] (Kind::shard): each
    // name with at least one subscriber on any core, once, as out(std::string_view), in no
    // particular order; only those matching *pattern when `pattern` is not nullptr (an empty
    // pattern is a glob too, not "no filter": it matches only the empty name).
    template <class F>
    void channels(Kind k, const std::string_view* pattern, F&& out) const;
    // PUBSUB NUMSUB / SHARDNUMSUB: subscribers of exactly that name on all cores (pattern
    // subscribers that would receive its messages are not counted, as in Redis). Kind::pattern:
    // the subscribers of exactly that pattern.
    uint64_t numsub(Kind k, std::string_view name) const;
    // PUBSUB NUMPAT: distinct patterns subscribed on any core (Redis 7: dictSize of
    // server.pubsub_patterns, patterns not clients).
    uint64_t numpat() const;
    // (name, subscriber) pairs of kind `k` on this core (INFO, counters).
    uint64_t local_subscriptions(Kind k) const { return local_subs_[idx(k)]; }

    // ---- introspection (tests, INFO) --------------------------------------------------------
    size_t local_names(Kind k) const;   // names of kind `k` with a local subscriber
    size_t remote_names(Kind k) const;  // names of kind `k` in the directory
    // Entries held in all containers (names, subscribers, index entries): 0 once nothing is
    // subscribed anywhere, however many subscriptions came and went.
    size_t footprint() const;

  private:
    struct Subs {
        uint64_t uid = 0;  // this name's key in pos_ (never reused)
        std::vector<SubId> ids;
    };
    struct PatternSubs {
        std::string pattern;
        Subs subs;
    };
    // A directory entry: counts per core, only for cores with a count (sparse), and their sum.
    struct CoreCount {
        uint32_t core;
        uint32_t count;
    };
    struct Remote {
        uint32_t total = 0;
        std::vector<CoreCount> cores;
        uint32_t on(unsigned c) const {
            for (const CoreCount& cc : cores)
                if (cc.core == c) return cc.count;
            return 0;
        }
    };
    struct RemotePattern {
        std::string pattern;
        Remote r;
    };
    struct PosKey {
        uint64_t uid;
        SubId sub;
        bool operator==(const PosKey&) const = default;
    };
    struct PosHash {
        size_t operator()(const PosKey& k) const noexcept {
            uint64_t h = (k.uid ^ (uint64_t{k.sub} << 32) ^ k.sub) * 0x9E3779B97F4A7C15ull;
            return static_cast<size_t>(h ^ (h >> 29));
        }
    };

    static constexpr size_t idx(Kind k) { return static_cast<size_t>(k); }
    NameMap<Subs>& local_map(Kind k) { return k == Kind::shard ? shards_ : channels_; }
    const NameMap<Subs>& local_map(Kind k) const { return k == Kind::shard ? shards_ : channels_; }
    NameMap<Remote>& remote_map(Kind k) { return k == Kind::shard ? rshards_ : rchannels_; }
    const NameMap<Remote>& remote_map(Kind k) const {
        return k == Kind::shard ? rshards_ : rchannels_;
    }
    Subs* find_subs(Kind k, std::string_view name);
    bool add(Subs& subs, SubId s);
    bool remove(Subs& subs, SubId s);
    void drop_pattern(size_t i);
    // Applies `delta` to core c's count in r; true if r is now empty.
    static bool update(Remote& r, unsigned c, int delta);

    unsigned core_;
    unsigned n_cores_;
    uint64_t next_uid_ = 1;
    uint64_t local_subs_[3] = {0, 0, 0};

    NameMap<Subs> channels_;
    NameMap<Subs> shards_;
    std::vector<PatternSubs> patterns_;  // scanned on each publish, as Redis scans its patterns
    NameMap<uint32_t> pattern_index_;    // pattern -> its place in patterns_
    std::unordered_map<PosKey, uint32_t, PosHash> pos_;  // (name, sub) -> place in its ids

    NameMap<Remote> rchannels_;
    NameMap<Remote> rshards_;
    std::vector<RemotePattern> rpatterns_;
    NameMap<uint32_t> rpattern_index_;
    mutable std::vector<uint32_t> scratch_;  // per-core sums for remote_fanout, kept all zero
};

template <class F, class A>
uint32_t Topics::deliver(Kind k, std::string_view channel, F&& f, A&& ahead) const {
    if (k == Kind::pattern) return 0;
    uint32_t n = 0;
    const NameMap<Subs>& m = local_map(k);
    if (auto it = m.find(channel); it != m.end()) {
        const std::vector<SubId>& ids = it->second.ids;
        const size_t count = ids.size();
        for (size_t i = 0; i < count && i < kAhead; ++i) ahead(ids[i]);
        for (size_t i = 0; i < count; ++i) {
            if (i + kAhead < count) ahead(ids[i + kAhead]);
            f(ids[i], static_cast<const std::string*>(nullptr));
        }
        n += static_cast<uint32_t>(count);
    }
    if (k == Kind::channel) {
        for (const PatternSubs& p : patterns_) {
            if (!glob_match(p.pattern, channel)) continue;
            for (SubId s : p.subs.ids) f(s, &p.pattern);
            n += static_cast<uint32_t>(p.subs.ids.size());
        }
    }
    return n;
}

template <class F>
uint32_t Topics::remote_fanout(Kind k, std::string_view channel, F&& f) const {
    if (k == Kind::pattern) return 0;
    uint32_t total = 0;
    const NameMap<Remote>& m = remote_map(k);
    if (auto it = m.find(channel); it != m.end()) {
        for (const CoreCount& cc : it->second.cores) scratch_[cc.core] += cc.count;
        total += it->second.total;
    }
    if (k == Kind::channel) {
        for (const RemotePattern& p : rpatterns_) {
            if (!glob_match(p.pattern, channel)) continue;
            for (const CoreCount& cc : p.r.cores) scratch_[cc.core] += cc.count;
            total += p.r.total;
        }
    }
    if (total == 0) return 0;
    for (unsigned c = 0; c < n_cores_; ++c) {
        const uint32_t n = scratch_[c];
        if (n == 0) continue;
        scratch_[c] = 0;
        f(c, n);
    }
    return total;
}

template <class F>
void Topics::channels(Kind k, const std::string_view* pattern, F&& out) const {
    if (k == Kind::pattern) return;
    const NameMap<Subs>& local = local_map(k);
    for (const auto& [name, subs] : local)
        if (pattern == nullptr || glob_match(*pattern, name)) out(std::string_view(name));
    for (const auto& [name, r] : remote_map(k)) {
        if (local.find(name) != local.end()) continue;  // listed above
        if (pattern == nullptr || glob_match(*pattern, name)) out(std::string_view(name));
    }
}

}  // namespace sluice::apps::broker
