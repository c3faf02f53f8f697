#pragma once
// Datasets: a tensor of samples (preprocessed to float32 in the network's
// layout) plus optional labels / targets, split deterministically by index
// ranges declared in the experiment.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

enum class DataFormat { idx, npy, raw };

struct RawSpec {        // for DataFormat::raw
  DType dtype = DType::u8;
  Shape shape;          // full shape of the file's array, first dim = samples
  int64_t header_bytes = 0;
};

struct Preprocess {
  double scale = 1.0;            // x * scale, then (x - mean[c]) / std[c]
  std::vector<double> mean;      // per channel, or one value for all; empty = 0
  std::vector<double> std;       // per channel, or one value for all; empty = 1
  std::string layout = "NCHW";   // layout the network wants: NCHW or NHWC
  std::string source_layout;     // layout of the stored samples: "NHW" (IDX images), "NCHW", "NHWC"; empty = infer
};

struct SplitRange {
  int64_t begin = 0;  // inclusive sample index
  int64_t end = 0;    // exclusive
};

struct DatasetSpec {
  DataFormat format = DataFormat::idx;
  std::string samples_path;                 // resolved absolute path
  std::optional<std::string> labels_path;   // resolved absolute path (class labels or targets)
  RawSpec raw;                              // samples, when format == raw
  Preprocess preprocess;
  std::map<std::string, SplitRange> splits; // "calibrate", "tune", "test", ...
  int64_t batch = 64;
};

struct Dataset {
  Tensor samples;                // float32, [N, C, H, W] (or as Preprocess::layout says), preprocessed
  std::optional<Tensor> labels;  // int64 [N] class labels, or float32 [N, ...] targets
  std::map<std::string, SplitRange> splits;

  int64_t size() const { return samples.empty() ? 0 : samples.dim(0); }
  // Samples [begin, end) as a view (no copy).
  Tensor sample_batch(int64_t begin, int64_t end) const;
  std::optional<Tensor> label_batch(int64_t begin, int64_t end) const;
  // invalid_input naming the split and the known ones when absent.
  Result<SplitRange> split(const std::string& name) const;
};

// Reads, converts and preprocesses; checks splits lie inside [0, N) and that
// labels (if any) have N entries. Errors name the file.
Result<Dataset> load_dataset(const DatasetSpec& spec);

}  // namespace caliprox
