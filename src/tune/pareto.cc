#include "tune/pareto.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/atomic_file.h"

namespace caliprox {

namespace {
using json = nlohmann::json;
}

std::vector<size_t> pareto_frontier(const std::vector<LossSpeedup>& points) {
  std::vector<size_t> order;
  for (size_t i = 0; i < points.size(); ++i)
    if (!std::isnan(points[i].loss) && !std::isnan(points[i].speedup)) order.push_back(i);
  // Loss ascending, then speedup descending, then index: the first point of
  // a run of equal losses is the only candidate of that run.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (points[a].loss != points[b].loss) return points[a].loss < points[b].loss;
    return points[a].speedup > points[b].speedup;
  });
  std::vector<size_t> frontier;
  double best_speedup = -std::numeric_limits<double>::infinity();
  for (size_t i : order) {
    // Every earlier point has loss <= this one's: it survives only by being strictly faster.
    if (points[i].speedup > best_speedup) {
      frontier.push_back(i);
      best_speedup = points[i].speedup;
    }
  }
  return frontier;
}

std::vector<size_t> thin_levels(const std::vector<LossSpeedup>& points, const std::vector<size_t>& frontier,
                                size_t exact_index, const ThinningRule& rule) {
  std::vector<size_t> levels{exact_index};
  for (size_t i : frontier) {
    if (i == exact_index) continue;
    const LossSpeedup& prev = points[levels.back()];
    const LossSpeedup& p = points[i];
    // A point no worse than the previous level needs no loss gap: it is the
    // same quality for more speed (only possible right after an exact level
    // that some configuration dominates).
    const bool loss_ok = p.loss >= prev.loss + rule.min_loss_step || p.loss <= prev.loss;
    if (p.speedup >= prev.speedup + rule.min_speedup_step && loss_ok) levels.push_back(i);
  }
  return levels;
}

std::string_view loss_unit(Metric m) { return metric_higher_is_better(m) ? "pp" : "absolute"; }

// ----------------------------------------------------------------- pareto.json

namespace {

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
json optional_number(const std::optional<double>& v) { return v ? number_or_null(*v) : json(nullptr); }

json to_json(const ParetoDocument& doc) {
  json goal = {{"kind", doc.goal.kind == GoalKind::absolute ? "absolute" : "relative"},
               {"max_loss", doc.goal.max_loss},
               {"unit", doc.goal.kind == GoalKind::absolute ? std::string(loss_unit(doc.metric)) : "fraction"}};
  json configs = json::array();
  for (const auto& c : doc.configurations) {
    json knobs = json::object();
    for (const auto& [node, knob] : c.knobs) knobs[node] = knob;
    configs.push_back({{"id", c.id},
                       {"level", c.level},
                       {"knobs", knobs},
                       {"qos", {{"tune", number_or_null(c.qos_tune)}, {"test", number_or_null(c.qos_test)}}},
                       {"qos_loss", {{"tune", number_or_null(c.loss_tune)}, {"test", number_or_null(c.loss_test)}}},
                       {"qos_predicted", optional_number(c.qos_predicted)},
                       {"speedup",
                        {{"predicted", optional_number(c.speedup_predicted)},
                         {"measured", optional_number(c.speedup_measured)}}}});
  }
  return {{"experiment", doc.experiment},
          {"fingerprint", doc.fingerprint},
          {"metric", metric_name(doc.metric)},
          {"loss_unit", loss_unit(doc.metric)},
          {"goal", goal},
          {"baseline",
           {{"qos", {{"tune", number_or_null(doc.baseline_qos_tune)}, {"test", number_or_null(doc.baseline_qos_test)}}},
            {"latency_ms", optional_number(doc.baseline_latency_ms)}}},
          {"configurations", configs}};
}

// Small typed accessors whose errors carry the key path.
struct Reader {
  std::string_view source;

  Result<const json*> member(const json& obj, const std::string& path, const char* key, bool required = true) const {
    if (!obj.is_object()) return invalid_input("{}: {}: expected an object, found {}", source, path, obj.type_name());
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (!required) return static_cast<const json*>(nullptr);
      return invalid_input("{}: {}: missing key \"{}\"", source, path, key);
    }
    return &*it;
  }
  Result<std::string> string(const json& obj, const std::string& path, const char* key) const {
    CP_ASSIGN_OR_RETURN(const json* v, member(obj, path, key));
    if (!v->is_string())
      return invalid_input("{}: {}.{}: expected a string, found {}", source, path, key, v->type_name());
    return v->get<std::string>();
  }
  // null reads as NaN (pareto_json_text writes NaN as null).
  Result<double> number(const json& obj, const std::string& path, const char* key) const {
    CP_ASSIGN_OR_RETURN(const json* v, member(obj, path, key));
    if (v->is_null()) return std::numeric_limits<double>::quiet_NaN();
    if (!v->is_number())
      return invalid_input("{}: {}.{}: expected a number, found {}", source, path, key, v->type_name());
    return v->get<double>();
  }
  Result<std::optional<double>> optional(const json& obj, const std::string& path, const char* key) const {
    CP_ASSIGN_OR_RETURN(const json* v, member(obj, path, key, false));
    if (v == nullptr || v->is_null()) return std::optional<double>();
    if (!v->is_number())
      return invalid_input("{}: {}.{}: expected a number or null, found {}", source, path, key, v->type_name());
    return std::optional<double>(v->get<double>());
  }
};

}  // namespace

std::string pareto_json_text(const ParetoDocument& doc) {
  // Node names come from the ONNX file: replace invalid UTF-8 rather than throw.
  return to_json(doc).dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Status write_pareto_json(const std::string& path, const ParetoDocument& doc) {
  return write_file_atomic(path, pareto_json_text(doc));
}

Result<ParetoDocument> load_pareto_json(const std::string& path, std::string_view option) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return invalid_input("{} {}: cannot read it", option, path);
  std::ostringstream text;
  text << f.rdbuf();
  return parse_pareto_json(text.str(), path);
}

Result<ParetoDocument> parse_pareto_json(std::string_view text, std::string_view source) {
  json root = json::parse(text.begin(), text.end(), nullptr, false);
  if (root.is_discarded()) return invalid_input("{}: not valid JSON", source);
  const Reader r{source};
  ParetoDocument doc;
  CP_ASSIGN_OR_RETURN(doc.experiment, r.string(root, "(root)", "experiment"));
  CP_ASSIGN_OR_RETURN(doc.fingerprint, r.string(root, "(root)", "fingerprint"));
  CP_ASSIGN_OR_RETURN(std::string metric, r.string(root, "(root)", "metric"));
  auto m = metric_from_name(metric);
  if (!m) return invalid_input("{}: metric: unknown metric '{}'", source, metric);
  doc.metric = *m;
  CP_ASSIGN_OR_RETURN(const json* goal, r.member(root, "(root)", "goal"));
  CP_ASSIGN_OR_RETURN(std::string kind, r.string(*goal, "goal", "kind"));
  if (kind != "absolute" && kind != "relative")
    return invalid_input("{}: goal.kind: expected 'absolute' or 'relative', found '{}'", source, kind);
  doc.goal.kind = kind == "absolute" ? GoalKind::absolute : GoalKind::relative;
  CP_ASSIGN_OR_RETURN(doc.goal.max_loss, r.number(*goal, "goal", "max_loss"));
  CP_ASSIGN_OR_RETURN(const json* baseline, r.member(root, "(root)", "baseline"));
  CP_ASSIGN_OR_RETURN(const json* bq, r.member(*baseline, "baseline", "qos"));
  CP_ASSIGN_OR_RETURN(doc.baseline_qos_tune, r.number(*bq, "baseline.qos", "tune"));
  CP_ASSIGN_OR_RETURN(doc.baseline_qos_test, r.number(*bq, "baseline.qos", "test"));
  CP_ASSIGN_OR_RETURN(doc.baseline_latency_ms, r.optional(*baseline, "baseline", "latency_ms"));
  CP_ASSIGN_OR_RETURN(const json* configs, r.member(root, "(root)", "configurations"));
  if (!configs->is_array())
    return invalid_input("{}: configurations: expected an array, found {}", source, configs->type_name());
  for (size_t i = 0; i < configs->size(); ++i) {
    const json& c = (*configs)[i];
    const std::string path = fmt::format("configurations[{}]", i);
    ParetoConfiguration pc;
    CP_ASSIGN_OR_RETURN(pc.id, r.string(c, path, "id"));
    CP_ASSIGN_OR_RETURN(const json* level, r.member(c, path, "level"));
    if (!level->is_number_integer() || level->get<int64_t>() < 0)
      return invalid_input("{}: {}.level: expected a non-negative integer, found {}", source, path, level->dump());
    pc.level = level->get<int>();
    CP_ASSIGN_OR_RETURN(const json* knobs, r.member(c, path, "knobs"));
    if (!knobs->is_object())
      return invalid_input("{}: {}.knobs: expected an object (node -> knob), found {}", source, path,
                           knobs->type_name());
    for (const auto& [node, knob] : knobs->items()) {
      if (!knob.is_string())
        return invalid_input("{}: {}.knobs.{}: expected a knob name, found {}", source, path, node, knob.dump());
      if (auto choice = parse_knob_choice(knob.get<std::string>()); !choice.ok())
        return choice.status().with_context(fmt::format("{}: {}.knobs.{}", source, path, node));
      pc.knobs[node] = knob.get<std::string>();
    }
    CP_ASSIGN_OR_RETURN(const json* qos, r.member(c, path, "qos"));
    CP_ASSIGN_OR_RETURN(pc.qos_tune, r.number(*qos, path + ".qos", "tune"));
    CP_ASSIGN_OR_RETURN(pc.qos_test, r.number(*qos, path + ".qos", "test"));
    CP_ASSIGN_OR_RETURN(const json* loss, r.member(c, path, "qos_loss"));
    CP_ASSIGN_OR_RETURN(pc.loss_tune, r.number(*loss, path + ".qos_loss", "tune"));
    CP_ASSIGN_OR_RETURN(pc.loss_test, r.number(*loss, path + ".qos_loss", "test"));
    CP_ASSIGN_OR_RETURN(pc.qos_predicted, r.optional(c, path, "qos_predicted"));
    CP_ASSIGN_OR_RETURN(const json* sp, r.member(c, path, "speedup"));
    CP_ASSIGN_OR_RETURN(pc.speedup_predicted, r.optional(*sp, path + ".speedup", "predicted"));
    CP_ASSIGN_OR_RETURN(pc.speedup_measured, r.optional(*sp, path + ".speedup", "measured"));
    doc.configurations.push_back(std::move(pc));
  }
  return doc;
}

// -------------------------------------------------------------- confs.txt export

namespace {

// The approximation token of a knob in confs.txt, or "" when it has none.
std::string hpvm_approx_name(const Knob& k) {
  switch (k.kind) {
    case KnobKind::exact: return "fp32";
    case KnobKind::fp16: return "fp16";
    case KnobKind::perforation: return k.half ? "perf_fp16" : "perf";
    case KnobKind::sampling: return k.half ? "samp_fp16" : "samp";
    case KnobKind::bf16:
    case KnobKind::int8:
    case KnobKind::prune:
    case KnobKind::lowrank: return "";
  }
  return "";
}

std::string number_text(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "0"; }

}  // namespace

Result<HpvmExport> format_hpvm_confs(const ParetoDocument& doc, const std::vector<HpvmLayer>& layers,
                                     std::string_view device) {
  if (device != "gpu" && device != "cpu")
    return invalid_input("--export-hpvm: device must be 'gpu' or 'cpu', found '{}'", device);
  if (!doc.baseline_latency_ms || !std::isfinite(*doc.baseline_latency_ms))
    return invalid_input("--export-hpvm: confs.txt starts with the baseline time, but the frontier has no "
                         "measured baseline latency");
  HpvmExport out;
  out.text = fmt::format("{}\n", number_text(*doc.baseline_latency_ms));
  int conf_no = 0;
  for (const auto& c : doc.configurations) {
    for (const auto& [node, knob] : c.knobs) {
      const bool known = std::any_of(layers.begin(), layers.end(), [&](const HpvmLayer& l) { return l.node == node; });
      if (!known)
        return invalid_input("--export-hpvm: configuration {} sets node '{}', which is not one of the {} layers "
                             "being exported",
                             c.id, node, layers.size());
    }
    std::string body;
    std::string why_not;
    for (size_t i = 0; i < layers.size() && why_not.empty(); ++i) {
      auto it = c.knobs.find(layers[i].node);
      const Knob* k = it == c.knobs.end() ? &exact_knob() : find_knob(it->second);
      if (k == nullptr || reshapes(*k)) {
        why_not = k ? fmt::format("node {} uses {}, which reshapes the network (ApproxHPVM has no such knob)",
                                  layers[i].node, it->second)
                    : fmt::format("node {} uses '{}', which has no ApproxHPVM knob ID", layers[i].node, it->second);
        break;
      }
      const std::string approx = hpvm_approx_name(*k);
      if (approx.empty() || k->hpvm_id == 0) {
        why_not = fmt::format("node {} uses {}, which has no ApproxHPVM knob ID", layers[i].node, k->name);
        break;
      }
      if (device == "cpu" && k->half) {
        why_not = fmt::format("node {} uses {}, but the HPVM CPU runtime has no half precision", layers[i].node,
                              k->name);
        break;
      }
      body += fmt::format("{} {} conv {} {}", i + 1, device, approx, k->hpvm_id);
      for (const auto& op : layers[i].fused_ops) body += fmt::format(" {} {} 1", op, k->half ? "fp16" : "fp32");
      body += "\n";
    }
    if (!why_not.empty()) {
      out.skipped.push_back(fmt::format("{}: {}", c.id, why_not));
      continue;
    }
    const double speedup = c.speedup_measured.value_or(c.speedup_predicted.value_or(1.0));
    ++conf_no;
    out.text += fmt::format("+++++\nconf{} {} {} {} {}\n{}-----\n", conf_no, number_text(speedup),
                            number_text(speedup), number_text(c.qos_test), number_text(c.loss_test), body);
  }
  return out;
}

}  // namespace caliprox
