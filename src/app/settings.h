#pragma once
// Plain settings structs: what the CLI parses and what run_<subcommand>() reads.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/status.h"

namespace caliprox {

struct CommonSettings {
  std::optional<std::string> out_dir;   // -o/--out; default runs/<experiment name>/
  std::optional<int> threads;           // overrides the target's threads
  std::optional<std::string> backend;   // overrides the target's backend
  bool json = false;                    // one JSON summary object on stdout
  bool quiet = false;
};

struct CheckSettings {
  CommonSettings common;
  std::string experiment_path;
};

struct InferSettings {
  CommonSettings common;
  std::string model_path;
  std::vector<std::pair<std::string, std::string>> inputs;  // name ("" = the only input) -> .npy path
  int repeat = 0;   // timed runs (0: run once, report no latency)
  int warmup = 0;   // untimed runs before the timed ones
};

struct EvalSettings {
  CommonSettings common;
  std::string experiment_path;
  std::string split = "test";
};

// Each returns the process exit status class via Status (the CLI maps it).
Status run_check(const CheckSettings& settings);
Status run_infer(const InferSettings& settings);
Status run_eval(const EvalSettings& settings);

}  // namespace caliprox
