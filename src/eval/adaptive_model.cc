#include "eval/adaptive_model.h"

#include <algorithm>

#include <fmt/format.h>

#include "eval/model_io.h"
#include "ir/onnx_import.h"

namespace caliprox {

Result<std::unique_ptr<AdaptiveModel>> AdaptiveModel::load(const std::string& path, const Options& options) {
  std::unique_ptr<AdaptiveModel> m(new AdaptiveModel());
  CP_ASSIGN_OR_RETURN(m->table_, load_adaptation(path));
  CP_ASSIGN_OR_RETURN(m->graph_, load_onnx(m->table_.model));
  if (m->graph_.inputs.size() != 1)
    return invalid_input("{}: model {} has {} inputs; the adaptive runtime takes models with one", path,
                         m->table_.model, m->graph_.inputs.size());
  m->input_ = m->graph_.inputs.front().name;
  CP_ASSIGN_OR_RETURN(m->backend_, make_backend(options.backend, options.threads));
  CP_ASSIGN_OR_RETURN(AdaptiveController c,
                      AdaptiveController::create(m->table_, options.strategy.value_or(m->table_.strategy),
                                                 options.params.value_or(m->table_.params)));
  m->controller_.emplace(std::move(c));
  // Every level's knobs must apply to this model: check them now, on a
  // batch-1 session, rather than at the first switch.
  const ValueInfo& in = m->graph_.inputs.front();
  if (!in.dims) return invalid_input("{}: model {} does not say its input's rank", path, m->table_.model);
  Shape shape;
  for (const Dim& d : *in.dims) shape.push_back(d.fixed() ? d.value : 1);
  CP_ASSIGN_OR_RETURN(Session * s, m->session(shape));
  for (const AdaptationLevel& l : m->table_.levels)
    CP_TRY(s->configure(l.knobs).with_context(fmt::format("{}: level {} ({})", path, l.level, l.id)));
  CP_TRY(s->configure(m->controller_->knobs()));
  m->sessions_.begin()->second.level = m->controller_->level();
  return m;
}

Result<Session*> AdaptiveModel::session(const Shape& shape) {
  auto it = sessions_.find(shape);
  if (it == sessions_.end()) {
    SessionOptions opt;
    opt.input_ranges = table_.input_ranges;
    CP_ASSIGN_OR_RETURN(auto s, Session::create(graph_, *backend_, {{input_, shape}}, opt));
    it = sessions_.emplace(shape, Configured{std::move(s), -1}).first;
  }
  return it->second.session.get();
}

Result<AdaptiveModel::Answer> AdaptiveModel::infer(const Tensor& input) {
  CP_ASSIGN_OR_RETURN(Session * s, session(input.shape()));
  Configured& c = sessions_.at(input.shape());
  const int level = controller_->level();
  if (c.level != level) {
    CP_TRY(s->configure(controller_->knobs()));
    c.level = level;
  }
  CP_TRY(s->run(std::span<const Tensor>(&input, 1)));
  const auto& names = s->output_names();
  const auto k = static_cast<size_t>(std::find(names.begin(), names.end(), table_.output) - names.begin());
  if (k == names.size()) return invalid_input("model {} has no output '{}'", table_.model, table_.output);
  Answer a{s->output(k).clone(), level};
  controller_->observe(a.output.span<float>());
  return a;
}

}  // namespace caliprox
