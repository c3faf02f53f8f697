#pragma once
// What an approximation does to a network's outputs, measured on a dataset
// split: the errors against the exact network (and against ground truth
// where there is some), and the error models that fit them
// (qos/error_model.h), so that a candidate can be placed in the parameter
// space `calibrate` searched. Used by `caliprox inject`.
#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/tensor.h"

namespace caliprox {

// approx, exact: [samples * row] floats, one row per sample. labels: int64
// class labels [samples] for classifiers, float targets [samples * row] for
// regression, or null. Classifier rows (labels int64, row >= 2) get flip
// rates, accuracies and a confusion matrix, and a fitted label_flip model;
// every output gets bias, std, mean |e| and quantiles of |e| against the
// exact network, and a fitted (pooled) Gaussian.
nlohmann::json output_errors(const std::vector<float>& approx, const std::vector<float>& exact, int64_t row,
                             const Tensor* labels);

}  // namespace caliprox
