// engine/options: the command line shared by every app.
#include <bitset>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_byteorder.h>

#include "engine/options.hpp"
#include "tests/unit/packet_builder.hpp"

namespace sluice::test {
namespace {

using engine::AppOption;
using engine::Options;
using engine::ParseResult;
using engine::ParseStatus;

class CommandLine : public ::testing::Test {
  protected:
    ParseResult parse(std::vector<const char*> args) {
        args.insert(args.begin(), "sluice-test");
        opts = Options{};
        ports.reset();
        return engine::parse_options(int(args.size()), args.data(), "sluice-test", app_options,
                                     opts);
    }
    void expect_error(std::vector<const char*> args, const std::string& mentions) {
        const ParseResult r = parse(args);
        EXPECT_EQ(r.status, ParseStatus::error) << "accepted: " << r.message;
        EXPECT_NE(r.message.find(mentions), std::string::npos)
            << "message '" << r.message << "' does not mention '" << mentions << "'";
        EXPECT_EQ(r.message.rfind("sluice-test: ", 0), 0u) << r.message;
    }

    Options opts;
    std::bitset<65536> ports;
    std::vector<AppOption> app_options{
        {"udp-ports", true, "UDP ports to serve",
         [this](const std::string& v, std::string& err) {
             return engine::parse_port_list(
                 v,
                 [this](uint16_t lo, uint16_t hi) {
                     for (uint32_t p = lo; p <= hi; ++p) ports.set(p);
                 },
                 err);
         }},
        {"verbose", false, "say more", [](const std::string&, std::string&) { return true; }},
    };
};

TEST_F(CommandLine, ValidCommandLineParses) {
    const ParseResult r = parse({"--port",
                                 "net_tap0,iface=sl0",
                                 "--ip",
                                 "198.18.0.2/24",
                                 "--gateway",
                                 "198.18.0.1",
                                 "--udp-ports",
                                 "7,9000-9002",
                                 "--mtu",
                                 "9000",
                                 "--burst=64",
                                 "--quiet",
                                 "--no-offload",
                                 "--soft-rss",
                                 "--duration",
                                 "2.5",
                                 "--linger",
                                 "30",
                                 "--verbose",
                                 "--",
                                 "-l",
                                 "0,1",
                                 "--file-prefix",
                                 "x"});
    ASSERT_EQ(r.status, ParseStatus::ok) << r.message;
    EXPECT_EQ(opts.port, "net_tap0,iface=sl0");
    EXPECT_EQ(opts.ip, rte_cpu_to_be_32(ip(198, 18, 0, 2)));
    EXPECT_EQ(opts.prefix_len, 24);
    EXPECT_EQ(opts.gateway, rte_cpu_to_be_32(ip(198, 18, 0, 1)));
    EXPECT_EQ(opts.mtu, 9000);
    EXPECT_EQ(opts.burst, 64);
    EXPECT_TRUE(opts.quiet);
    EXPECT_TRUE(opts.no_offload);
    EXPECT_TRUE(opts.soft_rss);
    EXPECT_DOUBLE_EQ(opts.duration_s, 2.5);
    EXPECT_DOUBLE_EQ(opts.linger_s, 30.0);
    EXPECT_EQ(opts.eal_args, (std::vector<std::string>{"-l", "0,1", "--file-prefix", "x"}));
    EXPECT_EQ(ports.count(), 4u);
    EXPECT_TRUE(ports.test(7));
    EXPECT_TRUE(ports.test(9000));
    EXPECT_TRUE(ports.test(9002));
    EXPECT_FALSE(ports.test(9003));
    EXPECT_FALSE(ports.test(8));
}

TEST_F(CommandLine, MinimalCommandLineHasDefaults) {
    const ParseResult r = parse({"--port", "0000:01:00.0", "--ip=10.0.0.1/8"});
    ASSERT_EQ(r.status, ParseStatus::ok) << r.message;
    EXPECT_EQ(opts.port, "0000:01:00.0");
    EXPECT_EQ(opts.ip, rte_cpu_to_be_32(ip(10, 0, 0, 1)));
    EXPECT_EQ(opts.prefix_len, 8);
    EXPECT_EQ(opts.gateway, 0u);
    EXPECT_EQ(opts.mtu, 1500);
    EXPECT_EQ(opts.burst, 32);
    EXPECT_FALSE(opts.quiet);
    EXPECT_TRUE(opts.eal_args.empty());
    EXPECT_TRUE(ports.none());
}

TEST_F(CommandLine, UnknownOptionIsAnError) {
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--frobnicate"}, "--frobnicate");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "stray"}, "stray");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--quiet=1"}, "--quiet");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--verbose=yes"},
                 "takes no value");
}

TEST_F(CommandLine, MissingPortIsAnError) {
    expect_error({"--ip", "198.18.0.2/24"}, "--port");
    expect_error({"--ip", "198.18.0.2/24", "--port"}, "--port");
    expect_error({"--port", "net_tap0"}, "--ip");
}

TEST_F(CommandLine, BadCidrIsAnError) {
    for (const char* bad :
         {"198.18.0.2/33", "1.2.3/24", "198.18.0.2", "198.18.0.2/", "198.18.0.2/0",
          "198.18.0.256/24", "198.18.0.2/2x", "198.18.0.2/024", "/24"})
        expect_error({"--port", "net_tap0", "--ip", bad}, "--ip");
}

TEST_F(CommandLine, GatewayOffLinkIsAnError) {
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--gateway", "198.18.1.1"},
                 "not on-link");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--gateway", "198.18.0"},
                 "--gateway");
    // On-link for a wider prefix.
    EXPECT_EQ(
        parse({"--port", "net_tap0", "--ip", "198.18.0.2/16", "--gateway", "198.18.1.1"}).status,
        ParseStatus::ok);
}

TEST_F(CommandLine, BadPortListIsAnError) {
    for (const char* bad : {"7,,9", "9-7", "70000", "", "7,", "-5", "5-", "a", "1-2-3", "65536"})
        expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--udp-ports", bad},
                     "--udp-ports");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--udp-ports"}, "needs a value");
}

TEST_F(CommandLine, BadNumbersAreErrors) {
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--mtu", "575"}, "--mtu");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--mtu", "9001"}, "--mtu");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--burst", "0"}, "--burst");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--burst", "513"}, "--burst");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--duration", "-1"}, "--duration");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--duration", "1s"}, "--duration");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--linger", "0"}, "--linger");
    expect_error({"--port", "net_tap0", "--ip", "198.18.0.2/24", "--linger", "x"}, "--linger");
}

TEST_F(CommandLine, HelpReturnsUsage) {
    for (const char* h : {"--help", "-h"}) {
        const ParseResult r = parse({"--port", "net_tap0", h, "--bogus"});
        EXPECT_EQ(r.status, ParseStatus::help);
        EXPECT_NE(r.message.find("usage: sluice-test"), std::string::npos) << r.message;
        EXPECT_NE(r.message.find("--udp-ports VALUE"), std::string::npos) << r.message;
        EXPECT_NE(r.message.find("UDP ports to serve"), std::string::npos);
    }
    // After "--" it belongs to the EAL.
    const ParseResult r = parse({"--port", "net_tap0", "--ip", "1.2.3.4/24", "--", "--help"});
    EXPECT_EQ(r.status, ParseStatus::ok);
    EXPECT_EQ(opts.eal_args, (std::vector<std::string>{"--help"}));
}

TEST(PortList, Ranges) {
    std::vector<std::pair<uint16_t, uint16_t>> got;
    std::string err;
    auto set = [&](uint16_t lo, uint16_t hi) { got.emplace_back(lo, hi); };
    ASSERT_TRUE(engine::parse_port_list("7,9000-9100,0,65535,5-5", set, err)) << err;
    EXPECT_EQ(got, (std::vector<std::pair<uint16_t, uint16_t>>{
                       {7, 7}, {9000, 9100}, {0, 0}, {65535, 65535}, {5, 5}}));
    for (const char* bad : {"7,,9", "9-7", "70000", "", ",", "1,2,", "x-1", "1 ,2", "+1"}) {
        got.clear();
        err.clear();
        EXPECT_FALSE(engine::parse_port_list(bad, set, err)) << "'" << bad << "'";
        EXPECT_FALSE(err.empty()) << "'" << bad << "'";
    }
}

TEST(Ipv4Text, ParseAndFormat) {
    rte_be32_t a = 0;
    ASSERT_TRUE(engine::parse_ipv4("192.0.2.33", a));
    EXPECT_EQ(a, rte_cpu_to_be_32(ip(192, 0, 2, 33)));
    EXPECT_EQ(engine::format_ipv4(a), "192.0.2.33");
    EXPECT_FALSE(engine::parse_ipv4("192.0.2", a));
    EXPECT_FALSE(engine::parse_ipv4("192.0.2.1.5", a));
    EXPECT_FALSE(engine::parse_ipv4("0x7f.0.0.1", a));
    uint8_t prefix = 0;
    ASSERT_TRUE(engine::parse_cidr("10.1.2.3/32", a, prefix));
    EXPECT_EQ(prefix, 32);
    EXPECT_EQ(a, rte_cpu_to_be_32(ip(10, 1, 2, 3)));
}

}  // namespace
}  // namespace sluice::test

namespace sluice::engine {
namespace {

Options parse_ok(std::vector<const char*> args, ParseResult* out) {
    args.insert(args.begin(), "sluice-x");
    Options o;
    *out = parse_options(int(args.size()), args.data(), "sluice-x", {}, o);
    return o;
}

TEST(BenchmarkOptions, MacSeedAndQueuesWithoutRss) {
    ParseResult r;
    const Options o = parse_ok({"--port", "net_ring0", "--ip", "198.18.0.2/24", "--mac",
                                "02:53:4c:00:00:02", "--seed", "32,60", "--queues-without-rss"},
                               &r);
    ASSERT_EQ(r.status, ParseStatus::ok) << r.message;
    EXPECT_TRUE(o.mac_set);
    const rte_ether_addr want = {{0x02, 0x53, 0x4c, 0x00, 0x00, 0x02}};
    EXPECT_TRUE(rte_is_same_ether_addr(&o.mac, &want));
    EXPECT_EQ(o.seed_count, 32u);
    EXPECT_EQ(o.seed_size, 60u);
    EXPECT_TRUE(o.queues_without_rss);
}

TEST(BenchmarkOptions, MalformedMacAndSeedRejected) {
    for (const char* bad_mac : {"02:53:4c:00:00", "01:00:5e:00:00:01", "00:00:00:00:00:00", "zz"}) {
        ParseResult r;
        parse_ok({"--port", "net_ring0", "--ip", "198.18.0.2/24", "--mac", bad_mac}, &r);
        EXPECT_EQ(r.status, ParseStatus::error) << bad_mac;
    }
    for (const char* bad_seed : {"32", "0,60", "32,59", "32,9015", ",60", "x,60"}) {
        ParseResult r;
        parse_ok({"--port", "net_ring0", "--ip", "198.18.0.2/24", "--seed", bad_seed}, &r);
        EXPECT_EQ(r.status, ParseStatus::error) << bad_seed;
    }
}

}  // namespace
}  // namespace sluice::engine
