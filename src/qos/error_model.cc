#include "qos/error_model.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

namespace caliprox {

namespace {

// Counter-based random numbers: every draw is a hash of (seed, sample,
// element, stream), so it does not depend on batching or order.
uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t draw(uint64_t seed, int64_t sample, int64_t element, uint64_t stream) {
  return mix(mix(mix(seed ^ stream * 0x632be59bd9b4e019ull) ^ static_cast<uint64_t>(sample)) ^
             static_cast<uint64_t>(element));
}

// Uniform in (0, 1).
double uniform(uint64_t bits) { return (static_cast<double>(bits >> 11) + 0.5) * 0x1.0p-53; }

// Standard normal (Box-Muller from two independent draws).
double normal(uint64_t seed, int64_t sample, int64_t element) {
  const double u1 = uniform(draw(seed, sample, element, 1)), u2 = uniform(draw(seed, sample, element, 2));
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
}

Result<std::vector<double>> numbers(const nlohmann::json& j, const std::string& key, bool non_negative) {
  std::vector<double> v;
  if (j.is_number()) v.push_back(j.get<double>());
  else if (j.is_array() && !j.empty() && std::all_of(j.begin(), j.end(), [](auto& x) { return x.is_number(); }))
    v = j.get<std::vector<double>>();
  else return invalid_input("{}: expected a number or a non-empty list of numbers, found {}", key, j.dump());
  for (double x : v)
    if (!std::isfinite(x) || (non_negative && x < 0))
      return invalid_input("{}: expected {}finite numbers, found {}", key, non_negative ? "non-negative " : "", x);
  return v;
}

Status apply_gaussian(const ErrorModel& m, Tensor& t, int64_t row, uint64_t seed, int64_t first) {
  for (const auto* v : {&m.bias, &m.std})
    if (v->size() != 1 && static_cast<int64_t>(v->size()) != row)
      return invalid_input("error model: {} values for rows of {} elements (give one, or one per element)",
                           v->size(), row);
  auto at = [&](const std::vector<double>& v, int64_t j) { return v.size() == 1 ? v[0] : v[static_cast<size_t>(j)]; };
  float* y = t.data<float>();
  const int64_t n = t.shape()[0];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t sample = first + i;
    const double z_sample = normal(seed, sample, -1);
    for (int64_t j = 0; j < row; ++j) {
      const double z = m.per == ErrorScope::sample ? z_sample : normal(seed, sample, j);
      const double e = at(m.bias, j) + at(m.std, j) * z;
      float& v = y[i * row + j];
      v = static_cast<float>(m.kind == ErrorKind::gaussian ? v + e : v * (1 + e));
    }
  }
  return {};
}

Status apply_label_flip(const ErrorModel& m, Tensor& t, int64_t row, uint64_t seed, int64_t first) {
  if (row < 2) return invalid_input("error model label_flip: rows of {} class(es): nothing to flip to", row);
  if (!m.confusion.empty() && static_cast<int64_t>(m.confusion.size()) != row)
    return invalid_input("error model label_flip: a {0}x{0} confusion matrix for {1} classes", m.confusion.size(), row);
  float* y = t.data<float>();
  for (int64_t i = 0; i < t.shape()[0]; ++i) {
    const int64_t sample = first + i;
    if (uniform(draw(seed, sample, 0, 3)) >= m.rate) continue;
    float* r = y + i * row;
    const int64_t top = std::max_element(r, r + row) - r;
    const double u = uniform(draw(seed, sample, 0, 4));
    int64_t to = -1;
    if (m.confusion.empty()) {
      to = std::min<int64_t>(static_cast<int64_t>(u * static_cast<double>(row - 1)), row - 2);
      if (to >= top) ++to;  // uniform over the other classes
    } else {
      const auto& p = m.confusion[static_cast<size_t>(top)];
      double total = 0;
      for (int64_t c = 0; c < row; ++c) total += c == top ? 0 : p[static_cast<size_t>(c)];
      double acc = 0;
      for (int64_t c = 0; c < row && to < 0; ++c) {
        if (c == top) continue;
        acc += p[static_cast<size_t>(c)] / total;
        if (u < acc) to = c;
      }
      if (to < 0) to = top == row - 1 ? row - 2 : row - 1;  // rounding at the end of the row
    }
    std::swap(r[top], r[to]);  // the row keeps its values; `to` is now the top class
  }
  return {};
}

void apply_hold_last(const ErrorModel& m, Tensor& t, int64_t row, uint64_t seed, int64_t first, ErrorStream* stream) {
  float* y = t.data<float>();
  std::vector<float> previous = stream ? stream->last_row : std::vector<float>{};
  for (int64_t i = 0; i < t.shape()[0]; ++i) {
    float* r = y + i * row;
    if (!previous.empty() && uniform(draw(seed, first + i, 0, 5)) < m.rate) std::copy(previous.begin(), previous.end(), r);
    previous.assign(r, r + row);  // what the stream now holds (a held row stays held)
  }
  if (stream) stream->last_row = std::move(previous);
}

}  // namespace

std::string_view error_kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::gaussian: return "gaussian";
    case ErrorKind::relative_gaussian: return "relative_gaussian";
    case ErrorKind::label_flip: return "label_flip";
    case ErrorKind::hold_last: return "hold_last";
  }
  return "?";
}

Result<ErrorModel> parse_error_model(const nlohmann::json& j, std::string_view where) {
  auto fail = [&](const Status& st) { return Status(st.code(), fmt::format("{}: {}", where, st.message())); };
  if (!j.is_object()) return fail(invalid_input("expected an object with a \"kind\", found {}", j.dump()));
  ErrorModel m;
  const std::string kind = j.value("kind", std::string());
  const std::vector<std::string_view> kinds = {"gaussian", "relative_gaussian", "label_flip", "hold_last"};
  auto it = std::find(kinds.begin(), kinds.end(), kind);
  if (it == kinds.end())
    return fail(invalid_input("kind: expected one of gaussian, relative_gaussian, label_flip, hold_last, found '{}'",
                              kind));
  m.kind = static_cast<ErrorKind>(it - kinds.begin());
  const bool gaussian = m.kind == ErrorKind::gaussian || m.kind == ErrorKind::relative_gaussian;
  const std::vector<std::string> allowed = gaussian ? std::vector<std::string>{"kind", "bias", "std", "per"}
                                                    : m.kind == ErrorKind::label_flip
                                                          ? std::vector<std::string>{"kind", "rate", "confusion"}
                                                          : std::vector<std::string>{"kind", "rate"};
  for (const auto& [key, value] : j.items())
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      return fail(invalid_input("unknown key '{}' for kind {} (allowed: {})", key, kind, fmt::join(allowed, ", ")));
  if (gaussian) {
    for (const char* key : {"bias", "std"}) {
      if (!j.contains(key)) continue;
      auto v = numbers(j[key], key, std::string_view(key) == "std");
      if (!v.ok()) return fail(v.status());
      (std::string_view(key) == "std" ? m.std : m.bias) = std::move(*v);
    }
    const std::string per = j.value("per", std::string("element"));
    if (per != "element" && per != "sample")
      return fail(invalid_input("per: expected element or sample, found '{}'", per));
    m.per = per == "sample" ? ErrorScope::sample : ErrorScope::element;
    return m;
  }
  if (!j.contains("rate") || !j["rate"].is_number() || !(j["rate"].get<double>() >= 0 && j["rate"].get<double>() <= 1))
    return fail(invalid_input("rate: expected a probability in [0, 1], found {}", j.contains("rate") ? j["rate"].dump() : "nothing"));
  m.rate = j["rate"].get<double>();
  if (j.contains("confusion")) {
    const auto& c = j["confusion"];
    const size_t n = c.is_array() ? c.size() : 0;
    for (size_t r = 0; r < n; ++r) {
      auto row = numbers(c[r], fmt::format("confusion[{}]", r), true);
      if (!row.ok()) return fail(row.status());
      if (row->size() != n) return fail(invalid_input("confusion[{}]: {} values in a {}-row matrix", r, row->size(), n));
      double off = 0;
      for (size_t k = 0; k < n; ++k) off += k == r ? 0 : (*row)[k];
      if (off <= 0) return fail(invalid_input("confusion[{}]: no other class to flip to", r));
      m.confusion.push_back(std::move(*row));
    }
    if (n < 2) return fail(invalid_input("confusion: expected a square matrix of at least 2 classes"));
  }
  return m;
}

nlohmann::json error_model_json(const ErrorModel& m) {
  nlohmann::json j = {{"kind", error_kind_name(m.kind)}};
  auto values = [](const std::vector<double>& v) { return v.size() == 1 ? nlohmann::json(v[0]) : nlohmann::json(v); };
  if (m.kind == ErrorKind::gaussian || m.kind == ErrorKind::relative_gaussian) {
    j["bias"] = values(m.bias);
    j["std"] = values(m.std);
    j["per"] = m.per == ErrorScope::sample ? "sample" : "element";
  } else {
    j["rate"] = m.rate;
    if (!m.confusion.empty()) j["confusion"] = m.confusion;
  }
  return j;
}

Status apply_error_model(const ErrorModel& m, Tensor& outputs, uint64_t seed, int64_t first_sample,
                         ErrorStream* stream) {
  if (outputs.dtype() != DType::f32 || outputs.shape().empty())
    return invalid_input("error model: expected float outputs [N, ...], found {} {}", dtype_name(outputs.dtype()),
                         shape_str(outputs.shape()));
  const int64_t n = outputs.shape()[0];
  const int64_t row = n == 0 ? 0 : outputs.numel() / n;
  if (n == 0) return {};
  switch (m.kind) {
    case ErrorKind::gaussian:
    case ErrorKind::relative_gaussian: return apply_gaussian(m, outputs, row, seed, first_sample);
    case ErrorKind::label_flip: return apply_label_flip(m, outputs, row, seed, first_sample);
    case ErrorKind::hold_last: apply_hold_last(m, outputs, row, seed, first_sample, stream); return {};
  }
  return {};
}

ErrorModel fit_gaussian(const std::vector<double>& errors, int64_t row, ErrorKind kind, bool per_element_values) {
  ErrorModel m;
  m.kind = kind;
  m.per = ErrorScope::element;
  const int64_t n = row > 0 ? static_cast<int64_t>(errors.size()) / row : 0;
  auto fit = [&](int64_t j0, int64_t j1) {  // mean and sample std over elements [j0, j1) of every row
    double sum = 0, sq = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = j0; j < j1; ++j) {
        const double e = errors[static_cast<size_t>(i * row + j)];
        sum += e;
        sq += e * e;
        ++count;
      }
    const double mean = count ? sum / static_cast<double>(count) : 0;
    const double var = count > 1 ? (sq - static_cast<double>(count) * mean * mean) / static_cast<double>(count - 1) : 0;
    return std::pair{mean, std::sqrt(std::max(var, 0.0))};
  };
  m.bias.clear();
  m.std.clear();
  if (!per_element_values) {
    auto [b, s] = fit(0, row);
    m.bias = {b};
    m.std = {s};
    return m;
  }
  for (int64_t j = 0; j < row; ++j) {
    auto [b, s] = fit(j, j + 1);
    m.bias.push_back(b);
    m.std.push_back(s);
  }
  return m;
}

}  // namespace caliprox
