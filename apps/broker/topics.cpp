// The topic engine: see topics.hpp. Redis 7 references are to pubsub.c.
#include "apps/broker/topics.hpp"

#include <cassert>
#include <cstdint>

namespace sluice::apps::broker {

Topics::Topics(unsigned core, unsigned n_cores)
    : core_(core), n_cores_(n_cores == 0 ? 1 : n_cores), scratch_(n_cores_, 0) {
    assert(core_ < n_cores_);
}

Topics::Subs* Topics::find_subs(Kind k, std::string_view name) {
    if (k == Kind::pattern) {
        auto it = pattern_index_.find(name);
        return it == pattern_index_.end() ? nullptr : &patterns_[it->second].subs;
    }
    NameMap<Subs>& m = local_map(k);
    auto it = m.find(name);
    return it == m.end() ? nullptr : &it->second;
}

bool Topics::add(Subs& subs, SubId s) {
    const auto [it, added] = pos_.try_emplace(PosKey{subs.uid, s}, 0);
    if (!added) return false;
    it->second = static_cast<uint32_t>(subs.ids.size());
    subs.ids.push_back(s);
    return true;
}

// Swap-remove: the last subscriber takes the leaver's place.
bool Topics::remove(Subs& subs, SubId s) {
    auto it = pos_.find(PosKey{subs.uid, s});
    if (it == pos_.end()) return false;
    const uint32_t i = it->second;
    pos_.erase(it);
    assert(i < subs.ids.size() && subs.ids[i] == s);
    const SubId last = subs.ids.back();
    if (last != s) {
        subs.ids[i] = last;
        pos_.find(PosKey{subs.uid, last})->second = i;
    }
    subs.ids.pop_back();
    // A crowd that left gives its memory back (the vector never shrinks by itself).
    if (subs.ids.capacity() > 64 && subs.ids.size() < subs.ids.capacity() / 4)
        subs.ids.shrink_to_fit();
    return true;
}

bool Topics::subscribe(Kind k, std::string_view name, SubId s) {
    Subs* subs = find_subs(k, name);
    if (subs == nullptr) {
        if (k == Kind::pattern) {
            pattern_index_.emplace(std::string(name), static_cast<uint32_t>(patterns_.size()));
            patterns_.push_back(PatternSubs{std::string(name), Subs{next_uid_++, {}}});
            subs = &patterns_.back().subs;
        } else {
            subs = &local_map(k).emplace(std::string(name), Subs{next_uid_++, {}}).first->second;
        }
    }
    if (!add(*subs, s)) return false;
    ++local_subs_[idx(k)];
    return true;
}

// Pattern i lost its last subscriber: the last pattern takes its place in the scan list.
void Topics::drop_pattern(size_t i) {
    pattern_index_.erase(pattern_index_.find(std::string_view(patterns_[i].pattern)));
    if (i + 1 != patterns_.size()) {
        patterns_[i] = std::move(patterns_.back());
        pattern_index_.find(std::string_view(patterns_[i].pattern))->second =
            static_cast<uint32_t>(i);
    }
    patterns_.pop_back();
}

bool Topics::unsubscribe(Kind k, std::string_view name, SubId s) {
    if (k == Kind::pattern) {
        auto it = pattern_index_.find(name);
        if (it == pattern_index_.end()) return false;
        const size_t i = it->second;
        if (!remove(patterns_[i].subs, s)) return false;
        if (patterns_[i].subs.ids.empty()) drop_pattern(i);
    } else {
        NameMap<Subs>& m = local_map(k);
        auto it = m.find(name);
        if (it == m.end()) return false;
        if (!remove(it->second, s)) return false;
        // Redis frees a channel's entry with its last subscriber (pubsubUnsubscribeChannel).
        if (it->second.ids.empty()) m.erase(it);
    }
    --local_subs_[idx(k)];
    return true;
}

uint32_t Topics::local_count(Kind k, std::string_view channel, uint32_t* by_pattern) const {
    if (by_pattern) *by_pattern = 0;
    if (k == Kind::pattern) return 0;
    uint32_t n = 0, np = 0;
    const NameMap<Subs>& m = local_map(k);
    if (auto it = m.find(channel); it != m.end()) n += static_cast<uint32_t>(it->second.ids.size());
    if (k == Kind::channel) {
        for (const PatternSubs& p : patterns_)
            if (glob_match(p.pattern, channel)) np += static_cast<uint32_t>(p.subs.ids.size());
    }
    if (by_pattern) *by_pattern = np;
    return n + np;
}

bool Topics::update(Remote& r, unsigned c, int delta) {
    size_t i = 0;
    while (i < r.cores.size() && r.cores[i].core != c) ++i;
    if (delta > 0) {
        if (i == r.cores.size()) r.cores.push_back(CoreCount{static_cast<uint32_t>(c), 0});
        r.cores[i].count += static_cast<uint32_t>(delta);
        r.total += static_cast<uint32_t>(delta);
        return false;
    }
    const uint64_t loss = static_cast<uint64_t>(-static_cast<int64_t>(delta));
    const uint32_t have = i == r.cores.size() ? 0 : r.cores[i].count;
    assert(loss <= have && "a core lost subscribers it did not have");
    const uint32_t d = loss < have ? static_cast<uint32_t>(loss) : have;
    if (d != 0) {
        r.cores[i].count -= d;
        r.total -= d;
        if (r.cores[i].count == 0) {
            r.cores[i] = r.cores.back();
            r.cores.pop_back();
        }
    }
    return r.cores.empty();
}

void Topics::remote_update(unsigned c, Kind k, std::string_view name, int delta) {
    assert(c < n_cores_ && c != core_);
    if (c >= n_cores_ || c == core_ || delta == 0) return;
    if (k == Kind::pattern) {
        auto it = rpattern_index_.find(name);
        if (it == rpattern_index_.end()) {
            assert(delta > 0 && "a core lost a pattern it did not have");
            if (delta < 0) return;
            it =
                rpattern_index_.emplace(std::string(name), static_cast<uint32_t>(rpatterns_.size()))
                    .first;
            rpatterns_.push_back(RemotePattern{std::string(name), Remote{}});
        }
        const size_t i = it->second;
        if (!update(rpatterns_[i].r, c, delta)) return;
        rpattern_index_.erase(it);
        if (i + 1 != rpatterns_.size()) {
            rpatterns_[i] = std::move(rpatterns_.back());
            rpattern_index_.find(std::string_view(rpatterns_[i].pattern))->second =
                static_cast<uint32_t>(i);
        }
        rpatterns_.pop_back();
        return;
    }
    NameMap<Remote>& m = remote_map(k);
    auto it = m.find(name);
    if (it == m.end()) {
        assert(delta > 0 && "a core lost a channel it did not have");
        if (delta < 0) return;
        it = m.emplace(std::string(name), Remote{}).first;
    }
    if (update(it->second, c, delta)) m.erase(it);
}

uint32_t Topics::remote_count(Kind k, std::string_view channel) const {
    if (k == Kind::pattern) return 0;
    uint32_t n = 0;
    const NameMap<Remote>& m = remote_map(k);
    if (auto it = m.find(channel); it != m.end()) n += it->second.total;
    if (k == Kind::channel) {
        for (const RemotePattern& p : rpatterns_)
            if (glob_match(p.pattern, channel)) n += p.r.total;
    }
    return n;
}

bool Topics::core_interested(unsigned c, Kind k, std::string_view channel) const {
    if (k == Kind::pattern || c >= n_cores_) return false;
    if (c == core_) return local_count(k, channel) > 0;
    const NameMap<Remote>& m = remote_map(k);
    if (auto it = m.find(channel); it != m.end() && it->second.on(c) != 0) return true;
    if (k == Kind::channel) {
        for (const RemotePattern& p : rpatterns_)
            if (p.r.on(c) != 0 && glob_match(p.pattern, channel)) return true;
    }
    return false;
}

uint64_t Topics::numsub(Kind k, std::string_view name) const {
    if (k == Kind::pattern) {
        uint64_t n = 0;
        if (auto it = pattern_index_.find(name); it != pattern_index_.end())
            n += patterns_[it->second].subs.ids.size();
        if (auto it = rpattern_index_.find(name); it != rpattern_index_.end())
            n += rpatterns_[it->second].r.total;
        return n;
    }
    uint64_t n = 0;
    const NameMap<Subs>& local = local_map(k);
    if (auto it = local.find(name); it != local.end()) n += it->second.ids.size();
    const NameMap<Remote>& remote = remote_map(k);
    if (auto it = remote.find(name); it != remote.end()) n += it->second.total;
    return n;
}

uint64_t Topics::numpat() const {
    uint64_t n = patterns_.size();
    for (const RemotePattern& p : rpatterns_)
        if (pattern_index_.find(std::string_view(p.pattern)) == pattern_index_.end()) ++n;
    return n;
}

size_t Topics::local_names(Kind k) const {
    return k == Kind::pattern ? patterns_.size() : local_map(k).size();
}

size_t Topics::remote_names(Kind k) const {
    return k == Kind::pattern ? rpatterns_.size() : remote_map(k).size();
}

size_t Topics::footprint() const {
    size_t n = channels_.size() + shards_.size() + patterns_.size() + pattern_index_.size() +
               pos_.size() + rchannels_.size() + rshards_.size() + rpatterns_.size() +
               rpattern_index_.size();
    for (const auto& [name, subs] : channels_) n += subs.ids.size();
    for (const auto& [name, subs] : shards_) n += subs.ids.size();
    for (const PatternSubs& p : patterns_) n += p.subs.ids.size();
    return n;
}

}  // namespace sluice::apps::broker
