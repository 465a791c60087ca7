#include "engine/eal.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <unistd.h>
#include <system_error>

#include <rte_eal.h>
#include <rte_errno.h>

#include "pmd/port.hpp"

namespace sluice::engine {

static bool has_opt(const std::vector<std::string>& a, std::initializer_list<const char*> names) {
    for (const std::string& s : a)
        for (const char* n : names) {
            const size_t l = strlen(n);
            if (s.compare(0, l, n) == 0 && (s.size() == l || s[l] == '=' || n[1] != '-'))
                return true;
        }
    return false;
}

EalPlan plan_eal(const std::string& prog, const std::string& port,
                 const std::vector<std::string>& user_args, bool hugepages_free) {
    EalPlan p;
    p.args.push_back(prog);
    const pmd::DeviceSpec dev = pmd::parse_device(port);
    const bool user_devices = has_opt(user_args, {"-a", "--allow", "-b", "--block", "--vdev"});
    if (dev.kind == pmd::DeviceSpec::Kind::vdev) {
        if (!user_devices || !has_opt(user_args, {"--vdev"})) {
            p.args.push_back("--vdev");
            p.args.push_back(dev.devargs);
        }
        if (!user_devices && !has_opt(user_args, {"--no-pci"})) p.args.push_back("--no-pci");
    } else if (dev.kind == pmd::DeviceSpec::Kind::pci && !user_devices) {
        p.args.push_back("-a");
        p.args.push_back(port);
    }
    if (!has_opt(user_args, {"--no-huge", "-m", "--socket-mem", "--in-memory", "--huge-dir"}) &&
        !hugepages_free) {
        p.args.push_back("--no-huge");
        p.args.push_back("-m");
        p.args.push_back("1024");
        p.notices.push_back(
            "no free hugepages (or no hugetlbfs mount): running with --no-huge -m 1024 (slower; "
            "see README)");
    }
    std::string prefix;
    for (size_t i = 0; i < user_args.size(); ++i) {
        const std::string& s = user_args[i];
        if (s == "--file-prefix" && i + 1 < user_args.size()) prefix = user_args[i + 1];
        if (s.rfind("--file-prefix=", 0) == 0) prefix = s.substr(14);
    }
    if (prefix.empty()) {
        prefix = prog.substr(prog.find_last_of('/') + 1);
        p.args.push_back("--file-prefix");
        p.args.push_back(prefix);
    }
    p.file_prefix = prefix;
    for (const std::string& s : user_args) p.args.push_back(s);
    return p;
}

EalPlan private_eal_plan(const std::string& prog, unsigned mem_mb) {
    EalPlan p;
    p.file_prefix = prog + "-" + std::to_string(getpid());
    p.args = {prog, "--no-huge", "-m", std::to_string(mem_mb), "--no-pci", "--no-shconf",
              "--file-prefix", p.file_prefix, "--log-level=lib.eal:warning",
              // rte_ip_frag_table_create logs every table at INFO under USER1.
              "--log-level=user1:warning"};
    return p;
}

bool hugepages_available() {
    // Free pages are not enough: the EAL also needs a hugetlbfs mount to map them.
    bool mounted = false;
    std::ifstream mounts("/proc/mounts");
    std::string dev, dir, type;
    while (mounts >> dev >> dir >> type) {
        if (type == "hugetlbfs") mounted = true;
        mounts.ignore(4096, '\n');
    }
    if (!mounted) return false;
    std::ifstream f("/proc/meminfo");
    std::string key;
    long value = 0;
    while (f >> key) {
        if (key == "HugePages_Free:" && f >> value) return value > 0;
        f.ignore(256, '\n');
    }
    return false;
}

int Eal::init(const EalPlan& plan) {
    std::vector<char*> argv;
    std::vector<std::string> copy = plan.args;  // rte_eal_init may permute argv
    for (std::string& s : copy) argv.push_back(s.data());
    argv.push_back(nullptr);
    const int rc = rte_eal_init(int(argv.size() - 1), argv.data());
    if (rc < 0) {
        fprintf(stderr, "sluice: EAL initialisation failed: %s\n", rte_strerror(rte_errno));
        return -rte_errno;
    }
    ok_ = true;
    return 0;
}

Eal::~Eal() {
    if (!ok_) return;
    // The EAL leaves its runtime directory (config, sockets) behind; this process's is ours.
    const std::string runtime_dir = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all(runtime_dir, ec);
}

}  // namespace sluice::engine
