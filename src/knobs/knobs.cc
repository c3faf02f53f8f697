#include "knobs/knobs.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace caliprox {

Int8Input int8_input_quantisation(const ValueRange& range) {
  if (range.min >= 0) return {range.max > 0 ? range.max / 255.0f : 1.0f, 0, 255};
  const float m = std::max(std::fabs(range.min), std::fabs(range.max));
  return {m > 0 ? m / 127.0f : 1.0f, -128, 127};
}

float int8_weight_scale(const float* w, int64_t n) {
  float max_abs = 0;
  for (int64_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::fabs(w[i]));
  return max_abs > 0 ? max_abs / 127.0f : 1.0f;
}

void merge_ranges(std::map<std::string, ValueRange>& into, const std::map<std::string, ValueRange>& seen) {
  for (const auto& [node, r] : seen) {
    auto [it, inserted] = into.emplace(node, r);
    if (!inserted) it->second = {std::min(it->second.min, r.min), std::max(it->second.max, r.max)};
  }
}

std::string_view knob_kind_name(KnobKind kind) {
  switch (kind) {
    case KnobKind::exact: return "exact";
    case KnobKind::perforation: return "perforation";
    case KnobKind::sampling: return "sampling";
    case KnobKind::fp16: return "fp16";
    case KnobKind::bf16: return "bf16";
    case KnobKind::int8: return "int8";
    case KnobKind::prune: return "prune";
    case KnobKind::lowrank: return "lowrank";
  }
  return "?";
}

namespace {

// ApproxHPVM numbering: per rate, columns before rows, offsets ascending;
// 121-138 fp32 perforation (151-168 the same in fp16), 231-239 fp32
// sampling (261-269 in fp16).
std::vector<Knob> build_catalogue() {
  std::vector<Knob> k;
  k.push_back({"fp32", 11, KnobKind::exact, true, 0, 0, false, 1.0, "exact fp32 (the network as exported)"});
  k.push_back({"fp16", 12, KnobKind::fp16, true, 0, 0, true, 2.0,
               "IEEE half inputs, weights and outputs (emulated here: no native fp16 arithmetic on this CPU)"});
  k.push_back({"bf16", 0, KnobKind::bf16, true, 0, 0, false, 2.0,
               "bfloat16 inputs and weights, fp32 accumulation and output"});
  k.push_back({"int8", 0, KnobKind::int8, true, 0, 0, false, 4.0,
               "int8 weights (per output channel), 8-bit inputs with a calibrated scale, int32 accumulation"});
  for (bool half : {false, true}) {
    int id = half ? 151 : 121;
    for (int rate = 2; rate <= 4; ++rate)
      for (bool rows : {false, true})
        for (int offset = 0; offset < rate; ++offset) {
          Knob p;
          p.name = fmt::format("perf-{}-{}-{}{}", rows ? "row" : "col", rate, offset, half ? "-fp16" : "");
          p.hpvm_id = id++;
          p.kind = KnobKind::perforation;
          p.rows = rows;
          p.rate = rate;
          p.offset = offset;
          p.half = half;
          p.nominal_speedup = static_cast<double>(rate) / (rate - 1) * (half ? 2.0 : 1.0);
          p.summary = fmt::format("skip every {}{} output {} from {} on, interpolate them{}", rate,
                                  rate == 2 ? "nd" : rate == 3 ? "rd" : "th", rows ? "row" : "column", offset,
                                  half ? "; IEEE half" : "");
          k.push_back(std::move(p));
        }
  }
  for (bool half : {false, true}) {
    int id = half ? 261 : 231;
    for (int rate = 2; rate <= 4; ++rate)
      for (int offset = 0; offset < rate; ++offset) {
        Knob s;
        s.name = fmt::format("samp-{}-{}{}", rate, offset, half ? "-fp16" : "");
        s.hpvm_id = id++;
        s.kind = KnobKind::sampling;
        s.rate = rate;
        s.offset = offset;
        s.half = half;
        s.nominal_speedup = static_cast<double>(rate) / (rate - 1) * (half ? 2.0 : 1.0);
        s.summary = fmt::format("drop filter elements {}+{}k, scale the kept ones by {}/{}{}", offset, rate, rate,
                                rate - 1, half ? "; IEEE half" : "");
        k.push_back(std::move(s));
      }
  }
  for (double f : {0.25, 0.5}) {
    Knob p;
    p.name = fmt::format("prune-{}", f);
    p.kind = KnobKind::prune;
    p.fraction = f;
    p.nominal_speedup = 1.0 / (1.0 - f);
    p.summary = fmt::format("remove {:g} % of the output channels (smallest filter L1 norms), repair the next layer",
                            f * 100);
    k.push_back(std::move(p));
  }
  for (double f : {0.5, 0.25}) {
    Knob l;
    l.name = fmt::format("lowrank-{}", f);
    l.kind = KnobKind::lowrank;
    l.fraction = f;
    l.nominal_speedup = 1.0 / f;
    l.summary = fmt::format("factorise (spatial SVD of a Conv, SVD of a Gemm) to at most {:g} % of the "
                            "multiply-adds",
                            f * 100);
    k.push_back(std::move(l));
  }
  return k;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

const std::vector<Knob>& knob_catalogue() {
  static const std::vector<Knob> catalogue = build_catalogue();
  return catalogue;
}

const Knob* find_knob(std::string_view name) {
  for (const Knob& k : knob_catalogue())
    if (k.name == name) return &k;
  return nullptr;
}

const Knob* find_knob_by_hpvm_id(int id) {
  if (id <= 0) return nullptr;
  for (const Knob& k : knob_catalogue())
    if (k.hpvm_id == id) return &k;
  return nullptr;
}

const Knob& exact_knob() { return knob_catalogue().front(); }

std::vector<std::string> knob_op_types(const Knob& knob) {
  if (knob.kind == KnobKind::exact) return {"*"};
  if (knob.kind == KnobKind::lowrank) return {"Conv", "Gemm"};
  return {"Conv"};
}

Result<KnobChoice> parse_knob_choice(std::string_view text) {
  auto one = [&](std::string_view part) -> Result<const Knob*> {
    const Knob* k = find_knob(part);
    if (k == nullptr) return invalid_input("unknown knob '{}'{}", part, suggest_knob(part));
    return k;
  };
  const size_t plus = text.find('+');
  if (plus == std::string_view::npos) {
    CP_ASSIGN_OR_RETURN(const Knob* k, one(text));
    return reshapes(*k) ? KnobChoice{k, &exact_knob()} : KnobChoice{nullptr, k};
  }
  CP_ASSIGN_OR_RETURN(const Knob* first, one(text.substr(0, plus)));
  CP_ASSIGN_OR_RETURN(const Knob* second, one(text.substr(plus + 1)));
  if (!reshapes(*first) || reshapes(*second) || second->kind == KnobKind::exact)
    return invalid_input("'{}': a combined knob is a reshape knob (prune-*, lowrank-*) then a kernel knob other than "
                         "{}, joined by '+', e.g. 'prune-0.5+int8'",
                         text, exact_knob().name);
  return KnobChoice{first, second};
}

std::string knob_choice_name(const KnobChoice& choice) {
  const Knob& kernel = choice.kernel ? *choice.kernel : exact_knob();
  if (choice.reshape == nullptr) return kernel.name;
  if (kernel.kind == KnobKind::exact) return choice.reshape->name;
  return fmt::format("{}+{}", choice.reshape->name, kernel.name);
}

std::string suggest_knob(std::string_view name) {
  const Knob* best = nullptr;
  size_t best_d = 0;
  for (const Knob& k : knob_catalogue()) {
    size_t d = edit_distance(name, k.name);
    if (!best || d < best_d) best = &k, best_d = d;
  }
  if (best && best_d <= std::max<size_t>(2, name.size() / 3)) return fmt::format(" (did you mean '{}'?)", best->name);
  return " (`caliprox knobs` lists them)";
}

bool knob_pattern_matches(std::string_view pattern, std::string_view name) {
  // Iterative glob with backtracking to the last '*'.
  size_t p = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool knob_pattern_matches_any(std::string_view pattern) {
  for (const Knob& k : knob_catalogue())
    if (knob_pattern_matches(pattern, k.name)) return true;
  return false;
}

std::vector<int64_t> perforation_kept(const Knob& knob, int64_t extent) {
  std::vector<int64_t> kept;
  for (int64_t p = 0; p < extent; ++p)
    if (p < knob.offset || (p - knob.offset) % knob.rate != 0) kept.push_back(p);
  return kept;
}

std::vector<bool> sampling_mask(const Knob& knob, int64_t c_in_per_group, int64_t kh, int64_t kw) {
  const int64_t plane = kh * kw;
  const int64_t rate = knob.rate;
  std::vector<bool> keep(static_cast<size_t>(c_in_per_group * plane), true);
  const bool rotate = plane % rate == 0;
  for (int64_t c = 0; c < c_in_per_group; ++c)
    for (int64_t t = 0; t < plane; ++t) {
      const int64_t i = c * plane + t;
      bool dropped;
      if (rotate) {
        const int64_t o = (knob.offset + c) % rate;
        dropped = t >= o && (t - o) % rate == 0;
      } else {
        dropped = i >= knob.offset && (i - knob.offset) % rate == 0;
      }
      keep[static_cast<size_t>(i)] = !dropped;
    }
  return keep;
}

Status knob_applies(const Knob& knob, const Node& node, const Shape& x, const Shape& w) {
  if (knob.kind == KnobKind::exact) return {};
  if (reshapes(knob))
    return invalid_input("knob '{}' on {} rewrites the graph: no kernel runs it (the evaluator applies the rewrite "
                         "before building a session)",
                         knob.name, node.describe());
  if (node.op_type != "Conv")
    return invalid_input("knob '{}' does not apply to {}: it applies to Conv only", knob.name, node.describe());
  if (x.size() != 4 || w.size() != 4)
    return invalid_input("knob '{}' does not apply to {}: only 2-D convolutions (rank-4 input) take knobs, this "
                         "one has a rank-{} input",
                         knob.name, node.describe(), x.size());
  CP_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(node, x, w));
  if (knob.kind == KnobKind::perforation) {
    const int64_t extent = knob.rows ? g.out_spatial[0] : g.out_spatial[1];
    if (perforation_kept(knob, extent).empty())
      return invalid_input("knob '{}' leaves nothing to compute on {}: its output has only {} {}", knob.name,
                           node.describe(), extent, knob.rows ? "row(s)" : "column(s)");
  }
  if (knob.kind == KnobKind::sampling) {
    auto mask = sampling_mask(knob, g.c_in_per_group(), g.kernel[0], g.kernel[1]);
    if (std::none_of(mask.begin(), mask.end(), [](bool b) { return b; }))
      return invalid_input("knob '{}' drops every filter element of {} ({} per filter)", knob.name, node.describe(),
                           mask.size());
  }
  return {};
}

double conv_layer_flops(const ConvGeometry& g) {
  double out = static_cast<double>(g.n) * static_cast<double>(g.c_out);
  for (int64_t d : g.out_spatial) out *= static_cast<double>(d);
  double k = static_cast<double>(g.c_in_per_group());
  for (int64_t d : g.kernel) k *= static_cast<double>(d);
  return 2.0 * out * k;
}

double layer_nominal_speedup(const Knob& knob, const ConvGeometry& g) {
  double s = 1;
  switch (knob.kind) {
    case KnobKind::exact: return 1;
    case KnobKind::fp16:
    case KnobKind::bf16:
    case KnobKind::int8:
    case KnobKind::prune:
    case KnobKind::lowrank: return knob.nominal_speedup;
    case KnobKind::perforation: {
      const int64_t extent = knob.rows ? g.out_spatial[0] : g.out_spatial[1];
      const auto kept = perforation_kept(knob, extent).size();
      s = kept == 0 ? 1.0 : static_cast<double>(extent) / static_cast<double>(kept);
      break;
    }
    case KnobKind::sampling: {
      auto mask = sampling_mask(knob, g.c_in_per_group(), g.kernel[0], g.kernel[1]);
      const auto kept = std::count(mask.begin(), mask.end(), true);
      s = kept == 0 ? 1.0 : static_cast<double>(mask.size()) / static_cast<double>(kept);
      break;
    }
  }
  return knob.half ? 2.0 * s : s;
}

Result<KnobConfig> parse_knob_config(std::string_view json_text, std::string_view source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::parse_error& e) {
    return invalid_input("{}: not valid JSON: {}", source, e.what());
  }
  if (!j.is_object()) return invalid_input("{}: a configuration is a JSON object with member 'knobs', found {}",
                                           source, j.type_name());
  auto it = j.find("knobs");
  if (it == j.end()) return invalid_input("{}: the configuration has no member 'knobs' (node name -> knob name)", source);
  if (!it->is_object())
    return invalid_input("{}: 'knobs' must be an object mapping node names to knob names, found {}", source,
                         it->type_name());
  KnobConfig config;
  for (const auto& [node, value] : it->items()) {
    if (value.is_string()) {
      auto choice = parse_knob_choice(value.get<std::string>());
      if (!choice.ok()) return choice.status().with_context(fmt::format("{}: knobs.{}", source, node));
      config[node] = knob_choice_name(*choice);
    } else if (value.is_number_integer()) {
      const Knob* knob = find_knob_by_hpvm_id(value.get<int>());
      if (!knob) return invalid_input("{}: knobs.{}: {} is not an ApproxHPVM knob ID this tool implements", source,
                                      node, value.get<int>());
      config[node] = knob->name;
    } else {
      return invalid_input("{}: knobs.{}: expected a knob name (string) or ApproxHPVM ID (integer), found {}", source,
                           node, value.type_name());
    }
  }
  return config;
}

Result<KnobConfig> load_knob_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_input("cannot open configuration file '{}'", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_knob_config(ss.str(), path);
}

}  // namespace caliprox
