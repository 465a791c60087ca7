#include "engine/telemetry.hpp"

#include <atomic>
#include <cstdlib>
#include <mutex>

#include <rte_telemetry.h>

namespace sluice::engine {

namespace {

std::atomic<const StatsView*> g_view{nullptr};
std::atomic<const std::map<std::string, std::string>*> g_info{nullptr};
// Telemetry runs on its own thread; publish/unpublish must not race a reply in progress.
std::mutex g_mu;

void add_engine(rte_tel_data* d, const CoreStats& s) {
#define SLUICE_X(name, help) rte_tel_data_add_dict_u64(d, #name, s.name);
    SLUICE_ENGINE_COUNTERS(SLUICE_X)
#undef SLUICE_X
}

void add_proto(rte_tel_data* d, const proto::Counters& c) {
#define SLUICE_X(name) rte_tel_data_add_dict_u64(d, #name, c.name);
    SLUICE_PROTO_COUNTERS(SLUICE_X)
#undef SLUICE_X
    rte_tel_data_add_dict_u64(d, "dropped", c.total_drops());
}

int cmd_stats(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_mu);
    const StatsView* v = g_view.load();
    if (!v) return -1;
    rte_tel_data_start_dict(d);
    add_engine(d, v->engine_total());
    add_proto(d, v->proto_total());
    return 0;
}

int cmd_drops(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_mu);
    const StatsView* v = g_view.load();
    if (!v) return -1;
    const proto::Counters c = v->proto_total();
    rte_tel_data_start_dict(d);
    for (unsigned i = 0; i < proto::kDropCount; ++i)
        rte_tel_data_add_dict_u64(d, proto::kDropNames[i], c.drops[i]);
    return 0;
}

int cmd_core(const char*, const char* params, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_mu);
    const StatsView* v = g_view.load();
    if (!v || !params || !*params) return -1;
    char* end = nullptr;
    const unsigned long w = strtoul(params, &end, 10);
    if (*end != '\0' || w >= v->workers) return -1;
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "lcore", v->lcore[w]);
    add_engine(d, *v->engine[w]);
    add_proto(d, *v->proto[w]);
    for (unsigned i = 0; i < proto::kDropCount; ++i)
        if (v->proto[w]->drops[i])
            rte_tel_data_add_dict_u64(d, proto::kDropNames[i], v->proto[w]->drops[i]);
    return 0;
}

int cmd_info(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_mu);
    const auto* info = g_info.load();
    if (!info) return -1;
    rte_tel_data_start_dict(d);
    for (const auto& [k, val] : *info) rte_tel_data_add_dict_string(d, k.c_str(), val.c_str());
    return 0;
}

}  // namespace

void telemetry_publish(const StatsView* view, const std::map<std::string, std::string>* info) {
    static std::once_flag once;
    std::call_once(once, [] {
        rte_telemetry_register_cmd("/sluice/stats", cmd_stats,
                                   "Sluice counters summed over workers. No parameters");
        rte_telemetry_register_cmd("/sluice/drops", cmd_drops,
                                   "Sluice drops by reason, summed over workers. No parameters");
        rte_telemetry_register_cmd("/sluice/core", cmd_core,
                                   "Counters of one Sluice worker. Parameters: worker index");
        rte_telemetry_register_cmd("/sluice/info", cmd_info,
                                   "Sluice port and configuration. No parameters");
    });
    std::lock_guard<std::mutex> lock(g_mu);
    g_view.store(view);
    g_info.store(info);
}

}  // namespace sluice::engine
