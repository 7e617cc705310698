// The meshlm binary on bad input: a clear message naming what is wrong, a non-zero exit,
// never a crash.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace meshlm {
namespace {

using testing::BuildDir;

// Runs meshlm with `args`; returns its combined output and exit status.
std::pair<std::string, int> Meshlm(const std::string& args) {
  return testing::RunCommand(testing::MeshlmBinary() + " " + args, 60, true);
}

TEST(Cli, BadInputGivesAClearErrorAndExitOne) {
  const std::string tiny = BuildDir() + "/testmodels/tiny-llama-f32";
  struct Case {
    std::string args;
    std::string expect;
  };
  const Case cases[] = {
      {"generate --model /nonexistent/dir --ids 1", "/nonexistent/dir/config.json' not found"},
      {"generate --model " + tiny + " --ids 1,x", "'x' is not a number"},
      {"generate --model " + tiny + " --ids 1,99999", "token id 99999 out of range"},
      {"generate --model " + tiny + " --ids 1 --ctx 100000", "exceeds the model's"},
      {"generate --model " + tiny + " --prompt hello", "has no tokenizer (tokenizer.json or GGUF"},
      {"generate --model " + tiny + " --ids 1 --top-p 0", "top_p 0 must be in (0, 1]"},
      {"bench --model " + tiny + " --prompt-tokens 300 --gen-tokens 10", "exceeds the model's"},
      {"generate --model " + tiny + " --tp 3 --ids 1", "tp=3 x pp=1 = 3 ranks, but the job has 1"},
      {"generate --model " + tiny + " --ep 2 --ids 1", "ep=2 needs a mixture-of-experts model"},
      {"generate --model " + BuildDir() + "/testmodels/tiny-qwen3moe-f32 --ep 2 --ids 1",
       "x ep=2 = 2 ranks, but the job has 1"},
      // Qwen3-235B-A22B on four hosts of 192/192/128/64 GiB: an even expert split leaves
      // the smallest host short, and the plan names the splits that fit.
      {"plan --model " + std::string(MESHLM_TEST_SOURCE_DIR) +
           "/tests/data/qwen3-235b-a22b -n 4 --ep 4 --ctx 8192 --memory 192,192,128,64",
       "rank 3 needs"},
      {"plan --model " + std::string(MESHLM_TEST_SOURCE_DIR) +
           "/tests/data/qwen3-235b-a22b -n 4 --ep 4 --ctx 8192 --memory 192,192,128,64",
       "tp=1 pp=4 ep=1"},
  };
  for (const Case& c : cases) {
    const auto [out, code] = Meshlm(c.args);
    EXPECT_EQ(code, 1) << c.args << "\n" << out;
    EXPECT_NE(out.find(c.expect), std::string::npos) << c.args << "\n" << out;
  }
}

// A bad --allow-origin is a flag error (exit 2, as other flag errors of serve), found
// before the model is looked at, and the message names the value.
TEST(Cli, ServeRefusesAnOriginThatIsNotOne) {
  const std::pair<std::string, std::string> cases[] = {
      {"localhost:3000", "'localhost:3000': no '://'"},
      {"http://a.test/app", "'http://a.test/app': an origin has no path"},
      {"http://a.test:70000", "'http://a.test:70000': the port is not a number"},
      {"http://ok.test,ftp//bad", "'ftp//bad'"},
      {"null", "'null'"},
      {"''", "'': an empty origin"},
  };
  for (const auto& [origin, expect] : cases) {
    const std::string args =
        "serve --model /nonexistent/model --allow-origin http://fine.test --allow-origin " + origin;
    const auto [out, code] = Meshlm(args);
    EXPECT_EQ(code, 2) << args << "\n" << out;
    EXPECT_NE(out.find("--allow-origin " + expect), std::string::npos) << args << "\n" << out;
    EXPECT_NE(out.find("expected scheme://host[:port] or *"), std::string::npos) << out;
  }
}

TEST(Cli, GeneratesOnTheTinyModel) {
  const auto [out, code] = Meshlm("generate --model " + BuildDir() +
                                  "/testmodels/tiny-llama-f32 --ids 1,2,3 --max-tokens 5 "
                                  "--temperature 0 --ignore-eos");
  EXPECT_EQ(code, 0) << out;
  // Five comma-separated ids on one line.
  EXPECT_NE(out.find_first_of("0123456789"), std::string::npos) << out;
  size_t commas = 0;
  for (char ch : out.substr(0, out.find('\n'))) commas += ch == ',';
  EXPECT_EQ(commas, 4u) << out;
}

// Like generate, bench and serve, tokenize defaults to the bundled demo model.
TEST(Cli, TokenizeDefaultsToTheDemoModel) {
  const std::string folder = std::string(MESHLM_TEST_SOURCE_DIR) + "/models/meshlm-demo-6m";
  const std::string bin = testing::MeshlmBinary() + " tokenize \"Hello, world\" --ids";
  const auto [dflt, dflt_code] = testing::RunCommand(bin, 60, false);
  const auto [named, named_code] = testing::RunCommand(bin + " --model " + folder, 60, false);
  ASSERT_EQ(named_code, 0) << named;
  EXPECT_EQ(dflt_code, 0) << dflt;
  EXPECT_NE(named.find_first_of("0123456789"), std::string::npos) << named;
  EXPECT_EQ(dflt, named);
}

// `meshlm launch -- meshlm ...` runs this same binary when no meshlm is on PATH.
TEST(Cli, LaunchRunsABareMeshlmAsItself) {
  const std::string cmd = "env PATH=/usr/bin:/bin " + testing::MeshlmBinary() +
                          " launch -n 2 -- meshlm tokenize \"Hello, world\" --ids";
  ASSERT_NE(system("env PATH=/usr/bin:/bin sh -c 'command -v meshlm' >/dev/null"), 0)
      << "a meshlm on the plain PATH would hide what this test checks";
  const auto [out, code] = testing::RunCommand(cmd, 60, false);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out.find("cannot run"), std::string::npos) << out;
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_NE(out.find("[" + std::to_string(rank) + "] "), std::string::npos) << out;
  }
  EXPECT_NE(out.find_first_of("0123456789", out.find("[1] ")), std::string::npos) << out;
}

// Loading reports its phases (rank 0 only: hashing in the start checks, then reading the
// weights in) and its time apart from the prompt's.
TEST(Cli, LoadShowsProgressAndItsOwnTime) {
  const std::string model = BuildDir() + "/testmodels/tiny-llama-f32";
  const std::string run = testing::MeshlmBinary() + " launch -n 2 -- " + testing::MeshlmBinary() +
                          " generate --model " + model + " --ids 1,2 --max-tokens 2";
  // A fresh copy, so that its files are hashed rather than found in the cache.
  const std::string copy = BuildDir() + "/load-progress-model";
  ASSERT_EQ(system(("rm -rf " + copy + " && cp -r " + model + " " + copy).c_str()), 0);
  const std::string on = testing::MeshlmBinary() + " launch -n 2 -- " + testing::MeshlmBinary() +
                         " generate --model " + copy + " --ids 1,2 --max-tokens 2";
  const auto [shown, shown_code] = testing::RunCommand("env MESHLM_PROGRESS=on " + on, 60, true);
  ASSERT_EQ(shown_code, 0) << shown;
  EXPECT_NE(shown.find("[0] [load] hashing"), std::string::npos) << shown;
  EXPECT_NE(shown.find("[0] [load] reading"), std::string::npos) << shown;
  EXPECT_NE(shown.find("100%"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("[1] [load]"), std::string::npos) << "one rank shows progress\n" << shown;
  const size_t stats = shown.find("[generate] load ");
  ASSERT_NE(stats, std::string::npos) << shown;
  EXPECT_LT(stats, shown.find("; prompt 2 tokens in ", stats)) << shown;
  // Off, and by default for a model this small: no progress lines.
  for (const std::string env : {"MESHLM_PROGRESS=off ", ""}) {
    const auto [quiet, quiet_code] = testing::RunCommand("env " + env + run, 60, true);
    EXPECT_EQ(quiet_code, 0) << quiet;
    EXPECT_EQ(quiet.find("[load]"), std::string::npos) << env << "\n" << quiet;
  }
}

// `make install` (cmake --install) puts the binary in PREFIX/bin and the demo model in
// PREFIX/share/meshlm/models, and the installed binary defaults to the installed model.
TEST(Cli, InstalledBinaryUsesTheInstalledDemoModel) {
  const std::string prefix = BuildDir() + "/install-test";
  const auto [log, code] = testing::RunCommand(
      "rm -rf " + prefix + " && cmake --install " + BuildDir() + " --prefix " + prefix, 120, true);
  ASSERT_EQ(code, 0) << log;
  const std::string model = prefix + "/share/meshlm/models/meshlm-demo-6m";
  EXPECT_EQ(
      system(("test -x " + prefix + "/bin/meshlm && test -f " + model + "/config.json").c_str()), 0)
      << log;
  const auto [out, out_code] = testing::RunCommand(
      prefix + "/bin/meshlm bench --prompt-tokens 4 --gen-tokens 2 --repeats 1", 60, true);
  EXPECT_EQ(out_code, 0) << out;
  EXPECT_NE(out.find("model            " + model + "\n"), std::string::npos) << out;
  // The build folder's binary has no installed copy beside it: the source tree's model.
  const auto [src, src_code] = Meshlm("bench --prompt-tokens 4 --gen-tokens 2 --repeats 1");
  EXPECT_EQ(src_code, 0) << src;
  EXPECT_NE(src.find("model            " + std::string(MESHLM_TEST_SOURCE_DIR) +
                     "/models/meshlm-demo-6m\n"),
            std::string::npos)
      << src;
}

// config and launch offer only the backends a job can run, and say which are coming;
// config refuses before contacting any host.
TEST(Cli, BackendsOfferedAreTheOnesThatRun) {
  for (const char* b : {"jaccl", "mpi"}) {
    const auto [out, code] = Meshlm(std::string("config --hosts h1,h2 --backend ") + b);
    EXPECT_EQ(code, 2) << out;
    EXPECT_NE(out.find("run over TCP for now"), std::string::npos) << out;
    EXPECT_EQ(out.find("h1:"), std::string::npos) << "no host was contacted\n" << out;
  }
  const auto [bad, bad_code] = Meshlm("config --hosts h1,h2 --backend carrier-pigeon");
  EXPECT_EQ(bad_code, 2) << bad;
  EXPECT_NE(bad.find("expected tcp (a full mesh) or ring"), std::string::npos) << bad;
  const auto [launch, launch_code] = Meshlm("launch -n 1 --backend jaccl -- true");
  EXPECT_NE(launch_code, 0) << launch;
  EXPECT_NE(launch.find("--backend"), std::string::npos) << launch;
  const auto [ring, ring_code] =
      Meshlm("launch -n 2 --backend ring -- " + testing::MeshlmBinary() + " tokenize hi --ids");
  EXPECT_EQ(ring_code, 0) << ring;
}

// meshlm plan reads each host's memory_gb from the hostfile when --memory is absent.
TEST(Cli, PlanTakesMemoryFromTheHostfile) {
  const std::string folder = std::string(MESHLM_TEST_SOURCE_DIR) + "/models/meshlm-demo-6m";
  auto plan = [&](const std::string& name, double gb) {
    const std::string path = BuildDir() + "/plan-" + name + ".json";
    FILE* f = fopen(path.c_str(), "w");
    fprintf(f,
            "[{\"ssh\":\"a\",\"ips\":[\"10.9.0.1\"],\"memory_gb\":%g},"
            "{\"ssh\":\"b\",\"ips\":[\"10.9.0.2\"],\"memory_gb\":%g}]",
            gb, gb);
    fclose(f);
    return testing::RunCommand(
        testing::MeshlmBinary() + " plan --model " + folder + " --hostfile " + path, 60, true);
  };
  const auto [small, small_code] = plan("small", 0.001);
  EXPECT_NE(small_code, 0) << small;
  EXPECT_NE(small.find("has 1.0 MiB"), std::string::npos) << small;
  const auto [big, big_code] = plan("big", 64);
  EXPECT_EQ(big_code, 0) << big;
  EXPECT_NE(big.find("the hostfile's memory_gb"), std::string::npos) << big;
}

// plan sizes the weights as the model's files hold them, or as a quantized copy with
// --quant; each rank's headroom is shown and a bad --quant is named.
TEST(Cli, PlanSizesQuantizedCopies) {
  const std::string folder = std::string(MESHLM_TEST_SOURCE_DIR) + "/models/meshlm-demo-6m";
  // The weights cell of rank 0's row, in MiB.
  auto weights = [&](const std::string& extra) {
    const auto [out, code] = Meshlm("plan --model " + folder + " -n 1 --memory 4 " + extra);
    EXPECT_EQ(code, 0) << out;
    const size_t row = out.find("\n   0 ");
    EXPECT_NE(row, std::string::npos) << out;
    EXPECT_NE(out.find("headroom"), std::string::npos) << out;
    EXPECT_NE(out.find("fits: every rank keeps at least"), std::string::npos) << out;
    std::istringstream cells(out.substr(row, out.find('\n', row + 1) - row));
    std::vector<std::string> v;
    for (std::string c; cells >> c;) v.push_back(c);
    return v.size() > 9 ? std::stod(v[8]) : -1.0;  // rank stage layers ... weights MiB
  };
  const double q8 = weights("--quant q8_0"), q4 = weights("--quant q4_0");
  const double as_stored = weights(""), bf16 = weights("--quant bf16");
  ASSERT_GT(q4, 0);
  EXPECT_NEAR(q8 / q4, 8.5 / 4.5, 0.05);  // the cells are rounded to 0.1 MiB
  // The demo model is stored in bf16: its files hold about 16 bits per weight.
  EXPECT_NEAR(as_stored / bf16, 1.0, 0.02);
  const auto [bad, code] = Meshlm("plan --model " + folder + " -n 1 --quant q5");
  EXPECT_EQ(code, 1) << bad;
  EXPECT_NE(bad.find("--quant 'q5': expected one of"), std::string::npos) << bad;
}

// A GGUF file carries its tokenizer and chat template in metadata: the demo model written
// as a bf16 GGUF (exactly its weights) reads, chats and writes like the folder it came from.
TEST(Cli, GgufTokenizerAndChatTemplateMatchTheFolder) {
  const std::string folder = std::string(MESHLM_TEST_SOURCE_DIR) + "/models/meshlm-demo-6m";
  const std::string gguf = BuildDir() + "/cli-demo-bf16.gguf";
  const auto [wout, wcode] = testing::RunCommand(
      "/usr/bin/python3 " + std::string(MESHLM_TEST_SOURCE_DIR) + "/tools/write_gguf.py --model " +
          folder + " --out " + gguf + " --type bf16",
      120, true);
  ASSERT_EQ(wcode, 0) << wout;
  for (const std::string args :
       {"tokenize \"Hello <|im_end|> world, 1234 times!\"",
        "generate --prompt \"The cat\" --max-tokens 24 --temperature 0 --ignore-eos",
        "generate --chat --prompt \"Tell me a joke\" --max-tokens 24 --temperature 0"}) {
    const std::string bin = testing::MeshlmBinary() + " " + args;
    const auto [want, want_code] = testing::RunCommand(bin + " --model " + folder, 60, false);
    const auto [got, got_code] = testing::RunCommand(bin + " --model " + gguf, 60, false);
    ASSERT_EQ(want_code, 0) << args << "\n" << want;
    EXPECT_EQ(got_code, 0) << args << "\n" << got;
    EXPECT_GT(want.size(), 20u) << args << "\n" << want;
    EXPECT_EQ(got, want) << args;
  }
  std::remove(gguf.c_str());
}

}  // namespace
}  // namespace meshlm
