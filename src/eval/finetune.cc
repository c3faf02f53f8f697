#include "eval/finetune.h"

#include <stdlib.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "eval/interrupt.h"
#include "ir/onnx_export.h"
#include "ir/onnx_import.h"
#include "knobs/prune.h"
#include "qos/process.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace caliprox {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json prune_step_json(const ReshapeStep& step, const PrunePlan& plan) {
  return {{"kind", "prune"},
          {"node", step.node},
          {"knob", step.knob->name},
          {"fraction", step.knob->fraction},
          {"members", plan.members},
          {"channels", plan.channels},
          {"keep", plan.keep},
          {"batch_norms", plan.batch_norms},
          {"conv_ends", plan.conv_ends},
          {"gemm_ends", plan.gemm_ends}};
}

std::string dims_text(const std::optional<std::vector<Dim>>& dims) {
  if (!dims) return "unknown rank";
  std::vector<std::string> parts;
  for (const Dim& d : *dims) parts.push_back(d.fixed() ? std::to_string(d.value) : d.symbol.empty() ? "?" : d.symbol);
  return fmt::format("[{}]", fmt::join(parts, ", "));
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.type() == b.type() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

std::string subgraph_difference(const Graph& a, const Graph& b);

bool same_attribute(const Attribute& a, const Attribute& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Attribute::Kind::f: return a.f == b.f;
    case Attribute::Kind::i: return a.i == b.i;
    case Attribute::Kind::s: return a.s == b.s;
    case Attribute::Kind::t: return same_tensor(a.t, b.t);
    case Attribute::Kind::floats: return a.floats == b.floats;
    case Attribute::Kind::ints: return a.ints == b.ints;
    case Attribute::Kind::strings: return a.strings == b.strings;
    case Attribute::Kind::graph: return a.g && b.g && subgraph_difference(*a.g, *b.g).empty();
  }
  return false;
}

// The first difference of two value lists (graph inputs or outputs), or "".
std::string interface_difference(const std::vector<ValueInfo>& a, const std::vector<ValueInfo>& b, const char* what,
                                 bool with_dims) {
  if (a.size() != b.size()) return fmt::format("{} graph {}(s) where the network has {}", b.size(), what, a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].dtype != b[i].dtype)
      return fmt::format("graph {} #{} is '{}' ({}), the network's is '{}' ({})", what, i, b[i].name,
                         dtype_name(b[i].dtype), a[i].name, dtype_name(a[i].dtype));
    if (with_dims && dims_text(a[i].dims) != dims_text(b[i].dims))
      return fmt::format("graph {} '{}' has dims {}, the network's has {}", what, a[i].name, dims_text(b[i].dims),
                         dims_text(a[i].dims));
  }
  return "";
}

std::string node_difference(const Node& a, const Node& b, size_t i) {
  if (a.name != b.name || a.op_type != b.op_type || a.domain != b.domain)
    return fmt::format("node #{} is '{}' ({}), the network's is '{}' ({})", i, b.name, b.op_type, a.name, a.op_type);
  if (a.inputs != b.inputs || a.outputs != b.outputs)
    return fmt::format("{} reads ({}) and writes ({}), the network's reads ({}) and writes ({})", b.describe(),
                       fmt::join(b.inputs, ", "), fmt::join(b.outputs, ", "), fmt::join(a.inputs, ", "),
                       fmt::join(a.outputs, ", "));
  for (const auto& [key, value] : a.attrs) {
    auto it = b.attrs.find(key);
    if (it == b.attrs.end()) return fmt::format("{} lacks attribute '{}'", b.describe(), key);
    if (!same_attribute(value, it->second))
      return fmt::format("{} has another value of attribute '{}'", b.describe(), key);
  }
  for (const auto& [key, value] : b.attrs)
    if (!a.attrs.count(key)) return fmt::format("{} has an attribute '{}' the network's has not", b.describe(), key);
  return "";
}

// A subgraph (If's branch, a loop body) must keep its structure; its
// weights, like the main graph's, may change.
std::string subgraph_difference(const Graph& a, const Graph& b) {
  if (a.nodes.size() != b.nodes.size())
    return fmt::format("{} nodes where the network has {}", b.nodes.size(), a.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i)
    if (auto d = node_difference(a.nodes[i], b.nodes[i], i); !d.empty()) return d;
  if (auto d = interface_difference(a.outputs, b.outputs, "output", false); !d.empty()) return d;
  return "";
}

std::string initializer_difference(const Graph& a, const Graph& b) {
  for (const auto& [name, t] : a.initializers) {
    auto it = b.initializers.find(name);
    if (it == b.initializers.end()) return fmt::format("initializer '{}' is missing", name);
    const Tensor& u = it->second;
    if (u.dtype() != t.dtype() || u.shape() != t.shape())
      return fmt::format("initializer '{}' is {} {}, the network's is {} {}", name, dtype_name(u.dtype()),
                         shape_str(u.shape()), dtype_name(t.dtype()), shape_str(t.shape()));
    if (t.dtype() == DType::f32) {
      for (float v : u.span<float>())
        if (!std::isfinite(v)) return fmt::format("initializer '{}' holds {}", name, v);
    } else if (!same_tensor(t, u)) {
      return fmt::format("initializer '{}' ({}: a shape or an index, not a weight) has other values", name,
                         dtype_name(t.dtype()));
    }
  }
  for (const auto& [name, t] : b.initializers)
    if (!a.initializers.count(name)) return fmt::format("initializer '{}' is not the network's", name);
  return "";
}

// A folder of its own under the system's temporary folder, removed with it.
struct TempFolder {
  std::string path;
  ~TempFolder() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

Status make_temp_folder(TempFolder& folder) {
  std::error_code ec;
  std::string pattern = (fs::temp_directory_path(ec) / "caliprox-finetune-XXXXXX").string();
  if (ec || ::mkdtemp(pattern.data()) == nullptr)
    return runtime_error("fine-tune: cannot create a temporary folder ({}): {}", pattern, std::strerror(errno));
  folder.path = pattern;
  return {};
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// Its last lines, indented, for an error message ("" when it said nothing).
std::string stderr_lines(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty()) return "";
  size_t start = text.size();
  for (int lines = 0; lines < 8 && start != std::string::npos && start > 0; ++lines)
    start = text.rfind('\n', start - 1);
  if (start != std::string::npos && start < text.size()) text = text.substr(start + 1);
  return fmt::format("; its stderr ends:\n    {}", replace_all(text, "\n", "\n    "));
}

}  // namespace

Result<json> prune_plan_json(Evaluator& ev, const std::string& model_path, const std::string& out_path) {
  CP_ASSIGN_OR_RETURN(auto applied, ev.applied_reshapes());
  json steps = json::array();
  for (const auto& a : applied) {
    if (a.step.knob->kind == KnobKind::prune) {
      CP_ASSIGN_OR_RETURN(PrunePlan plan, plan_prune(*a.before, a.step.node, a.step.knob->fraction));
      steps.push_back(prune_step_json(a.step, plan));
    } else {
      steps.push_back({{"kind", "lowrank"},
                       {"node", a.step.node},
                       {"op_type", a.step.op_type},
                       {"knob", a.step.knob->name},
                       {"fraction", a.step.knob->fraction}});
    }
  }
  const Experiment& exp = ev.experiment();
  return json{{"format", "caliprox-prune-plan"},
              {"version", 1},
              {"experiment", exp.name},
              {"experiment_path", exp.source_path},
              {"network", exp.network.name},
              {"original_model", exp.network.model_path},
              {"model", model_path},
              {"output", out_path},
              {"configuration", ev.configuration()},
              {"kernel_knobs", ev.kernel_configuration()},
              {"steps", std::move(steps)}};
}

Status check_same_structure(const Graph& expected, const Graph& got, const std::string& what) {
  std::string why;
  if (expected.opset != got.opset)  // some ops changed meaning between opsets
    why = fmt::format("default-domain opset {}, the network's is {}", got.opset, expected.opset);
  if (why.empty()) why = interface_difference(expected.inputs, got.inputs, "input", true);
  if (why.empty()) why = interface_difference(expected.outputs, got.outputs, "output", false);
  if (why.empty() && expected.nodes.size() != got.nodes.size())
    why = fmt::format("{} nodes where the network has {}", got.nodes.size(), expected.nodes.size());
  for (size_t i = 0; why.empty() && i < expected.nodes.size(); ++i)
    why = node_difference(expected.nodes[i], got.nodes[i], i);
  if (why.empty()) why = initializer_difference(expected, got);
  if (why.empty()) return {};
  return invalid_input("{}: not the structure of the network it was given: {}", what, why);
}

Status check_finetune_possible(Evaluator& ev) {
  const NetworkSpec& network = ev.experiment().network;
  CP_ASSIGN_OR_RETURN(auto applied, ev.applied_reshapes());
  if (applied.empty())
    return invalid_input("fine-tune: the configuration has no reshape knob (prune-*, lowrank-*), so the network is "
                         "the trained one: there is nothing to fine-tune");
  if (!network.finetune)
    return invalid_input("fine-tune: network '{}' of {} has no finetune hook (the network's finetune: key, man "
                         "caliprox-experiment, FINE-TUNING)",
                         network.name, ev.experiment().source_path);
  return {};
}

Result<FinetuneRun> finetune_current(Evaluator& ev) {
  CP_TRY(check_finetune_possible(ev));
  const NetworkSpec& network = ev.experiment().network;
  const FinetuneSpec& spec = *network.finetune;
  TempFolder folder;
  CP_TRY(make_temp_folder(folder));
  const std::string plan_path = folder.path + "/plan.json", model_path = folder.path + "/reshaped.onnx",
                    out_path = folder.path + "/finetuned.onnx";
  CP_TRY(save_onnx(ev.current_graph(), model_path));
  FinetuneRun run;
  CP_ASSIGN_OR_RETURN(run.plan, prune_plan_json(ev, model_path, out_path));
  CP_TRY(write_file_atomic(plan_path, run.plan.dump(1) + "\n"));

  ProcessSpec process;
  for (const std::string& arg : spec.command)
    process.argv.push_back(
        replace_all(replace_all(replace_all(arg, "{plan}", plan_path), "{model}", model_path), "{out}", out_path));
  process.cwd = spec.dir;
  process.env = inherited_environment();
  for (const auto& [k, v] : spec.env) process.env[k] = v;
  process.env["CALIPROX_FINETUNE_PLAN"] = plan_path;
  process.env["CALIPROX_FINETUNE_MODEL"] = model_path;
  process.env["CALIPROX_FINETUNE_OUT"] = out_path;
  process.timeout_s = spec.timeout_s;
  process.max_stdout = 16 << 20;  // read and dropped: the hook's answer is its file
  process.stop = interrupt_requested;
  auto result = run_process(process);
  if (!result.ok()) return result.status().with_context("fine-tune hook");
  run.seconds = result->seconds;
  run.stderr_tail = result->err_tail;
  if (result->stopped) return interrupted_status("fine-tuning");
  const std::string hook =
      fmt::format("fine-tune hook of network '{}' ({})", network.name, fmt::join(spec.command, " "));
  const std::string said = stderr_lines(result->err_tail);
  if (result->timed_out || result->stdout_overflow || result->signal || result->exit_code != 0)
    return runtime_error("{} failed: {}; the network stays as reshaped{}", hook, result->describe(), said);
  std::error_code ec;
  if (!fs::is_regular_file(out_path, ec))
    return runtime_error("{} exited 0 but wrote no model at {{out}}; the network stays as reshaped{}", hook, said);
  auto tuned = load_onnx(out_path);
  if (!tuned.ok())
    return runtime_error("{} wrote a model caliprox cannot load ({}); the network stays as reshaped", hook,
                         tuned.status().message());
  if (Status st = check_same_structure(ev.current_graph(), *tuned, "the model it wrote"); !st.ok())
    return runtime_error("{}: rejected {}; the network stays as reshaped", hook, st.message());
  log_debug("fine-tune hook took {:.1f} s{}", run.seconds, said);
  CP_TRY(ev.replace_current_graph(std::move(*tuned)));
  return run;
}

}  // namespace caliprox
