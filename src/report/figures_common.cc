// What the figure builders share.
#include <cmath>

#include <fmt/format.h>

#include "report/figure.h"

namespace caliprox::report {

using nlohmann::json;

json number_or_null(const json& v) {
  if (!v.is_number()) return nullptr;
  const double x = v.get<double>();
  return std::isfinite(x) ? json(x) : json(nullptr);
}

json layer_of(const std::string& filter, json mark, json encoding) {
  return {{"transform", json::array({{{"filter", filter}}})},
          {"mark", std::move(mark)},
          {"encoding", std::move(encoding)}};
}

int count_rows(const json& rows, const std::string& kind_key, const std::string& kind,
               const std::vector<std::string>& non_null) {
  int n = 0;
  for (const json& r : rows) {
    if (!kind_key.empty() && r.value(kind_key, "") != kind) continue;
    bool all = true;
    for (const std::string& k : non_null) all = all && r.contains(k) && r[k].is_number();
    n += all ? 1 : 0;
  }
  return n;
}

Problem content_problem(const Artifact& a, const std::exception& e) {
  std::string why = e.what();
  // nlohmann's "[json.exception.type_error.302] type must be number, but is null" -> after the tag.
  if (why.starts_with("[json.exception.")) {
    if (auto close = why.find("] "); close != std::string::npos) why = why.substr(close + 2);
  }
  return {a.path, fmt::format("unexpected content ({}); not drawn", why)};
}

void each_artifact(const RunFolder& run, ArtifactKind kind, Figures& out,
                   const std::function<void(const Artifact&)>& build) {
  for (const Artifact* a : run.all(kind)) {
    try {
      build(*a);
    } catch (const std::exception& e) {
      out.problems.push_back(content_problem(*a, e));
    }
  }
}

}  // namespace caliprox::report
