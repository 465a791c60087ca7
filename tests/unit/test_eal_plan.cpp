// engine/eal plan_eal and pmd::parse_device: what the EAL is given for a port.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/eal.hpp"
#include "pmd/port.hpp"

namespace sluice::test {
namespace {

using engine::EalPlan;
using engine::plan_eal;
using Args = std::vector<std::string>;

size_t count(const Args& a, const std::string& s) {
    return size_t(std::count(a.begin(), a.end(), s));
}

// True when `a` contains `seq` as consecutive elements.
bool has_seq(const Args& a, const Args& seq) {
    return std::search(a.begin(), a.end(), seq.begin(), seq.end()) != a.end();
}

TEST(EalPlan, VdevAddsVdevAndNoPci) {
    const EalPlan p = plan_eal("/usr/bin/sluice-reflector", "net_tap0,iface=sl0", {}, true);
    ASSERT_FALSE(p.args.empty());
    EXPECT_EQ(p.args[0], "/usr/bin/sluice-reflector");
    EXPECT_TRUE(has_seq(p.args, {"--vdev", "net_tap0,iface=sl0"}));
    EXPECT_EQ(count(p.args, "--no-pci"), 1u);
    EXPECT_EQ(count(p.args, "-a"), 0u);
    EXPECT_EQ(count(p.args, "--no-huge"), 0u);
    EXPECT_TRUE(p.notices.empty());
    EXPECT_TRUE(has_seq(p.args, {"--file-prefix", "sluice-reflector"}));
    EXPECT_EQ(p.file_prefix, "sluice-reflector");
}

TEST(EalPlan, PciAddsAllowList) {
    const EalPlan p = plan_eal("sluice-reflector", "0000:3b:00.1", {}, true);
    EXPECT_TRUE(has_seq(p.args, {"-a", "0000:3b:00.1"}));
    EXPECT_EQ(count(p.args, "--vdev"), 0u);
    EXPECT_EQ(count(p.args, "--no-pci"), 0u);
}

TEST(EalPlan, UserDevicesRespected) {
    const EalPlan p = plan_eal("app", "0000:3b:00.1", {"-a", "0000:3b:00.0"}, true);
    EXPECT_EQ(count(p.args, "-a"), 1u);
    EXPECT_EQ(count(p.args, "0000:3b:00.1"), 0u);
    const EalPlan v = plan_eal("app", "net_tap0", {"--vdev", "net_tap0,iface=x", "--no-pci"}, true);
    EXPECT_EQ(count(v.args, "--vdev"), 1u);
    EXPECT_EQ(count(v.args, "--no-pci"), 1u);
}

TEST(EalPlan, NoHugepagesAddsNoHugeAndNotice) {
    const EalPlan p = plan_eal("app", "net_tap0", {}, false);
    EXPECT_TRUE(has_seq(p.args, {"--no-huge", "-m", "1024"}));
    ASSERT_EQ(p.notices.size(), 1u);
    EXPECT_NE(p.notices[0].find("--no-huge"), std::string::npos) << p.notices[0];
}

TEST(EalPlan, UserMemoryOptionsRespected) {
    for (const Args& user : {Args{"-m", "2048"}, Args{"--socket-mem", "512"}, Args{"--no-huge"},
                             Args{"--in-memory"}, Args{"--huge-dir", "/mnt/huge"}}) {
        const EalPlan p = plan_eal("app", "net_tap0", user, false);
        EXPECT_EQ(count(p.args, "1024"), 0u) << user[0];
        EXPECT_LE(count(p.args, "--no-huge"), 1u) << user[0];
        EXPECT_TRUE(p.notices.empty()) << user[0];
        EXPECT_TRUE(has_seq(p.args, user)) << user[0];  // passed on as given
    }
}

TEST(EalPlan, UserFilePrefixRespected) {
    const EalPlan p = plan_eal("/opt/app", "net_tap0", {"--file-prefix", "mine"}, true);
    EXPECT_EQ(p.file_prefix, "mine");
    EXPECT_EQ(count(p.args, "--file-prefix"), 1u);
    EXPECT_TRUE(has_seq(p.args, {"--file-prefix", "mine"}));
    const EalPlan q = plan_eal("/opt/app", "net_tap0", {"--file-prefix=other"}, true);
    EXPECT_EQ(q.file_prefix, "other");
    EXPECT_EQ(count(q.args, "--file-prefix"), 0u);
    EXPECT_EQ(count(q.args, "--file-prefix=other"), 1u);
}

TEST(EalPlan, UserArgsComeLast) {
    const EalPlan p = plan_eal("app", "net_tap0", {"-l", "0,1"}, true);
    ASSERT_GE(p.args.size(), 2u);
    EXPECT_EQ(p.args[p.args.size() - 2], "-l");
    EXPECT_EQ(p.args.back(), "0,1");
}

TEST(ParseDevice, PciForms) {
    auto d = pmd::parse_device("0000:01:00.0");
    EXPECT_EQ(d.kind, pmd::DeviceSpec::Kind::pci);
    EXPECT_EQ(d.name, "0000:01:00.0");
    EXPECT_EQ(d.devargs, "0000:01:00.0");
    d = pmd::parse_device("01:00.0");
    EXPECT_EQ(d.kind, pmd::DeviceSpec::Kind::pci);
    EXPECT_EQ(d.name, "0000:01:00.0");
    d = pmd::parse_device("0000:af:1f.7,rxq_cqe_comp_en=0");
    EXPECT_EQ(d.kind, pmd::DeviceSpec::Kind::pci);
    EXPECT_EQ(d.name, "0000:af:1f.7");
    EXPECT_EQ(d.devargs, "0000:af:1f.7,rxq_cqe_comp_en=0");
}

TEST(ParseDevice, Vdevs) {
    auto d = pmd::parse_device("net_tap0,iface=sl0");
    EXPECT_EQ(d.kind, pmd::DeviceSpec::Kind::vdev);
    EXPECT_EQ(d.name, "net_tap0");
    EXPECT_EQ(d.devargs, "net_tap0,iface=sl0");
    d = pmd::parse_device("net_af_packet1,iface=veth0,qpairs=2");
    EXPECT_EQ(d.kind, pmd::DeviceSpec::Kind::vdev);
    EXPECT_EQ(d.name, "net_af_packet1");
    d = pmd::parse_device("net_null0");
    EXPECT_EQ(d.kind, pmd::DeviceSpec::Kind::vdev);
    EXPECT_EQ(d.name, "net_null0");
}

// Which drivers copy frames on TX (TCP then builds whole segments: Tcp::set_linear_tx).
TEST(DriverCopiesTx, CopyingDriversAndMemifZeroCopyClients) {
    for (const char* d : {"net_tap", "net_af_packet", "net_pcap", "net_vhost"})
        EXPECT_TRUE(pmd::driver_copies_tx(d, "")) << d;
    for (const char* d : {"net_ring", "net_null", "net_ixgbe", "mlx5_pci", "net_i40e", ""})
        EXPECT_FALSE(pmd::driver_copies_tx(d, "")) << d;
    EXPECT_TRUE(pmd::driver_copies_tx("net_memif", "net_memif0,role=server,socket=/run/x.sock"));
    EXPECT_TRUE(pmd::driver_copies_tx("net_memif", "net_memif0,role=client"));
    EXPECT_TRUE(pmd::driver_copies_tx("net_memif", "net_memif0,role=client,zero-copy=no"));
    // A client's zero-copy mode puts the mbufs' own buffers on the ring; a server ignores it.
    EXPECT_FALSE(pmd::driver_copies_tx("net_memif", "net_memif0,role=client,zero-copy=yes"));
    EXPECT_TRUE(pmd::driver_copies_tx("net_memif", "net_memif0,role=server,zero-copy=yes"));
}

TEST(ParseDevice, InvalidStrings) {
    for (const char* bad :
         {"", ",iface=x", "eth0", "net_", "net_tap 0", "net-tap0", "0000:01:00.8", "0000:01:00",
          "1:00.0", "0000:0g:00.0", "01:00.0x", "0000-01-00.0", "tap0,iface=x"})
        EXPECT_EQ(pmd::parse_device(bad).kind, pmd::DeviceSpec::Kind::invalid) << "'" << bad << "'";
}

}  // namespace
}  // namespace sluice::test
