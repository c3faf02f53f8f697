#include "knobs/rewrite.h"

#include <algorithm>

#include <fmt/format.h>

namespace caliprox {

namespace {

// Inputs and outputs must survive a rewrite (the rule in rewrite.h).
Status check_interface(const Graph& before, const Graph& after, const GraphRewrite& rewrite) {
  auto same = [](const std::vector<ValueInfo>& a, const std::vector<ValueInfo>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].name != b[i].name || a[i].dtype != b[i].dtype) return false;
    return true;
  };
  auto names = [](const std::vector<ValueInfo>& v) {
    std::vector<std::string> r;
    for (const auto& i : v) r.push_back(i.name);
    return fmt::format("{}", fmt::join(r, ", "));
  };
  if (!same(before.inputs, after.inputs))
    return invalid_input("graph rewrite '{}' changed the model's inputs ({} became {})", rewrite.key(),
                         names(before.inputs), names(after.inputs));
  if (!same(before.outputs, after.outputs))
    return invalid_input("graph rewrite '{}' changed the model's outputs ({} became {})", rewrite.key(),
                         names(before.outputs), names(after.outputs));
  return {};
}

}  // namespace

std::string rewrite_chain_key(const RewriteChain& chain) {
  std::vector<std::string> keys;
  for (const auto& r : chain) keys.push_back(r->key());
  return fmt::format("{}", fmt::join(keys, " | "));
}

RewriteCache::RewriteCache(Graph base, size_t capacity)
    : base_(std::make_shared<const Graph>(std::move(base))), capacity_(std::max<size_t>(capacity, 1)) {}

void RewriteCache::touch(const std::string& key) {
  order_.remove(key);
  order_.push_back(key);
  while (order_.size() > capacity_) {
    graphs_.erase(order_.front());
    order_.pop_front();
  }
}

size_t RewriteCache::variants() const {
  std::lock_guard lock(mutex_);
  return graphs_.size();
}

Result<std::shared_ptr<const Graph>> RewriteCache::graph(const RewriteChain& chain) {
  std::lock_guard lock(mutex_);
  std::shared_ptr<const Graph> at = base_;
  RewriteChain prefix;
  for (const auto& rewrite : chain) {
    prefix.push_back(rewrite);
    const std::string key = rewrite_chain_key(prefix);
    if (auto it = graphs_.find(key); it != graphs_.end()) {
      at = it->second;
      touch(key);
      continue;
    }
    Result<Graph> next = rewrite->apply(*at);
    if (!next.ok()) return next.status().with_context(fmt::format("graph rewrite '{}'", rewrite->key()));
    CP_TRY(check_interface(*at, *next, *rewrite));
    at = graphs_.emplace(key, std::make_shared<const Graph>(std::move(next).value())).first->second;
    touch(key);
  }
  return at;
}

}  // namespace caliprox
