#pragma once
// Error models: what `inject` puts on a network's outputs in place of an
// approximation, and what an application's perception simulates from
// ground truth (man caliprox-experiment, ERROR MODELS). Each is a plain
// reference implementation over float outputs [N, ...] (one row per
// sample). Draws are a pure function of (seed, sample index, element), so a
// sample gets the same perturbation whether the batch runs whole, split in
// chunks or one sample at a time.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/tensor.h"
#include "util/status.h"

namespace caliprox {

enum class ErrorKind {
  gaussian,           // y + e,        e ~ N(bias, std)
  relative_gaussian,  // y * (1 + e),  e ~ N(bias, std)
  label_flip,         // classifier rows: the top class swaps places with another, with probability rate
  hold_last,          // streams: a sample's row is replaced by the previous one's, with probability rate
};
std::string_view error_kind_name(ErrorKind k);

// Gaussian kinds: one draw per sample (added to every element of its row)
// or one per element.
enum class ErrorScope { sample, element };

struct ErrorModel {
  ErrorKind kind = ErrorKind::gaussian;
  ErrorScope per = ErrorScope::element;
  // Gaussian kinds: scalars, or one value per element of a row (then their
  // length must equal the row's).
  std::vector<double> bias{0.0}, std{0.0};
  double rate = 0;  // label_flip, hold_last: probability per sample
  // label_flip: row c = where class c goes when it flips (probabilities over
  // classes, the diagonal ignored); empty = uniform over the other classes.
  std::vector<std::vector<double>> confusion;
};

// {"kind": "gaussian", "bias": 0.1, "std": 0.05, "per": "element"},
// {"kind": "label_flip", "rate": 0.02, "confusion": [[...], ...]},
// {"kind": "hold_last", "rate": 0.1}. Errors (invalid_input) name the key
// and what was expected; `where` prefixes them ("request networks.heading.error_model").
Result<ErrorModel> parse_error_model(const nlohmann::json& j, std::string_view where);
nlohmann::json error_model_json(const ErrorModel& m);

// Carries hold_last's previous row from one call to the next (a stream
// split over calls); empty at the start of a stream.
struct ErrorStream {
  std::vector<float> last_row;
};

// Perturbs `outputs` (f32, [N, ...]) in place. first_sample: the index of
// row 0 in the whole stream or dataset (the draws depend on it, not on how
// the rows were batched). invalid_input when the model does not fit the
// tensor (vector lengths, a label flip on rows of one class, a confusion
// matrix of another size).
Status apply_error_model(const ErrorModel& m, Tensor& outputs, uint64_t seed, int64_t first_sample,
                         ErrorStream* stream = nullptr);

// The Gaussian that fits observed errors e (rows of `row` elements, as
// y_approx - y_exact for `gaussian`, y_approx / y_exact - 1 for
// `relative_gaussian`): independent per element, with one bias and std per
// element of the row when `per_element_values`, else one pooled over all
// elements. std is the sample standard deviation (n - 1).
ErrorModel fit_gaussian(const std::vector<double>& errors, int64_t row, ErrorKind kind, bool per_element_values);

}  // namespace caliprox
