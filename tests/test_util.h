// Helpers shared by the end-to-end tests: where the build tree is, reading reference
// files, comparing logits, running the meshlm binary.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace meshlm::testing {

/// The build tree: $MESHLM_BUILD_DIR (set by CTest), else the one this test was built in.
inline std::string BuildDir() {
  const char* b = std::getenv("MESHLM_BUILD_DIR");
  return b ? b : MESHLM_TEST_BUILD_DIR;
}
inline std::string ModelsDir() { return BuildDir() + "/testmodels"; }
inline std::string MeshlmBinary() { return BuildDir() + "/src/cli/meshlm"; }

/// A raw little-endian f32 file.
inline std::vector<float> ReadF32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  const size_t n = static_cast<size_t>(in.tellg()) / 4;
  std::vector<float> v(n);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), n * 4);
  return v;
}

/// Comma-separated token ids.
inline std::vector<int32_t> ReadTokens(const std::string& path) {
  std::ifstream in(path);
  std::vector<int32_t> ids;
  std::string item;
  while (std::getline(in, item, ',')) ids.push_back(std::stoi(item));
  return ids;
}

/// max |a - b| / max |b|: the error relative to the reference's scale.
inline double RelErr(const float* a, const float* b, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}
inline double RelErr(const std::vector<float>& a, const std::vector<float>& b) {
  return RelErr(a.data(), b.data(), std::min(a.size(), b.size()));
}

/// Runs a shell command bounded by `seconds`; returns its stdout (with stderr when
/// `with_stderr`) and its exit status.
inline std::pair<std::string, int> RunCommand(const std::string& cmd, int seconds = 120,
                                              bool with_stderr = false) {
  const std::string full = "timeout -k 5 " + std::to_string(seconds) + " " + cmd +
                           (with_stderr ? " 2>&1" : " 2>/dev/null") + "; echo \"@$?\"";
  FILE* p = popen(full.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  pclose(p);
  const size_t at = out.rfind('@');
  if (at == std::string::npos) return {out, -1};
  return {out.substr(0, at), std::atoi(out.c_str() + at + 1)};
}

}  // namespace meshlm::testing
