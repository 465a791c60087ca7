#include "engine/telemetry.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
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
    for (bool rx : {true, false}) {
        const pmd::ImpairStats im = v->impair_total(rx);
#define SLUICE_X(name) \
    rte_tel_data_add_dict_u64(d, rx ? "impair_rx_" #name : "impair_tx_" #name, im.name);
        SLUICE_IMPAIR_COUNTERS(SLUICE_X)
#undef SLUICE_X
    }
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

std::string fixed2(double v) {
    char b[32];
    snprintf(b, sizeof b, "%.2f", v);
    return b;
}

void add_runtime(rte_tel_data* d, const CoreStats& e, const proto::Counters& p) {
    const RuntimeRow r = runtime_row(e, p);
    rte_tel_data_add_dict_u64(d, "packets", r.packets);
    rte_tel_data_add_dict_u64(d, "polls", e.polls);
    rte_tel_data_add_dict_u64(d, "busy_polls", e.busy_polls);
    rte_tel_data_add_dict_u64(d, "idle_polls", e.polls - e.busy_polls);
    rte_tel_data_add_dict_string(d, "vector", fixed2(r.vector).c_str());
    rte_tel_data_add_dict_string(d, "busy_pct", fixed2(r.busy_pct).c_str());
    rte_tel_data_add_dict_string(d, "cycles_per_pkt_rx", fixed2(r.rx).c_str());
    rte_tel_data_add_dict_string(d, "cycles_per_pkt_steer", fixed2(r.steer).c_str());
    rte_tel_data_add_dict_string(d, "cycles_per_pkt_stack", fixed2(r.stack).c_str());
    rte_tel_data_add_dict_string(d, "cycles_per_pkt_tx_prep", fixed2(r.tx_prep).c_str());
    rte_tel_data_add_dict_string(d, "cycles_per_pkt_tx", fixed2(r.tx).c_str());
    rte_tel_data_add_dict_string(d, "cycles_per_pkt_engine", fixed2(r.engine).c_str());
    rte_tel_data_add_dict_string(d, "cycles_per_pkt_busy", fixed2(r.busy).c_str());
}

// Per worker and in total: polls, vector size, cycles per packet by stage.
int cmd_runtime(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_mu);
    const StatsView* v = g_view.load();
    if (!v) return -1;
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "tsc_hz", v->tsc_hz);
    for (unsigned i = 0; i < v->workers; ++i) {
        rte_tel_data* c = rte_tel_data_alloc();
        if (!c) return -1;
        rte_tel_data_start_dict(c);
        rte_tel_data_add_dict_u64(c, "lcore", v->lcore[i]);
        add_runtime(c, *v->engine[i], *v->proto[i]);
        const std::string name = "worker" + std::to_string(i);
        rte_tel_data_add_dict_container(d, name.c_str(), c, 0);
    }
    rte_tel_data* t = rte_tel_data_alloc();
    if (!t) return -1;
    rte_tel_data_start_dict(t);
    add_runtime(t, v->engine_total(), v->proto_total());
    rte_tel_data_add_dict_container(d, "total", t, 0);
    return 0;
}

int cmd_tcp(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> lock(g_mu);
    const StatsView* v = g_view.load();
    if (!v || !v->has_tcp()) return -1;
    const proto::TcpCounters t = v->tcp_total();
    rte_tel_data_start_dict(d);
#define SLUICE_X(name, help) rte_tel_data_add_dict_u64(d, #name, t.name);
    SLUICE_TCP_COUNTERS(SLUICE_X)
#undef SLUICE_X
    rte_tel_data_add_dict_u64(d, "established", t.established);
    rte_tel_data_add_dict_u64(d, "open_conns", t.open_conns);
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
        rte_telemetry_register_cmd(
            "/sluice/runtime", cmd_runtime,
            "Per worker: polls, vector size, cycles per packet by stage. No parameters");
        rte_telemetry_register_cmd("/sluice/tcp", cmd_tcp,
                                   "Sluice TCP counters summed over workers. No parameters");
        rte_telemetry_register_cmd("/sluice/info", cmd_info,
                                   "Sluice port and configuration. No parameters");
    });
    std::lock_guard<std::mutex> lock(g_mu);
    g_view.store(view);
    g_info.store(info);
}

}  // namespace sluice::engine
