// Linear algebra: Einsum's equation (ir/ops/einsum_params.h) and its shape
// inference; Det's.
#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include <fmt/format.h>

#include "ir/ops/einsum_params.h"
#include "ir/ops/infer_checks.h"
#include "ir/ops/tensor_ops_util.h"

namespace caliprox::einsum {

namespace {

constexpr int kLetters = 52;  // a-z, A-Z; ellipsis axes are numbered after them

int letter_index(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
  return -1;
}

// The letter of label l < kLetters (the inverse of letter_index).
char letter_of(int l) { return static_cast<char>(l < 26 ? 'a' + l : 'A' + (l - 26)); }

// One term of the equation: its letters and where "..." stands (-1: none).
struct Term {
  std::vector<int> letters;
  int ellipsis_at = -1;
};

Result<Term> parse_term(const Node& node, const std::string& text) {
  Term t;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 3, "...") == 0) {
      if (t.ellipsis_at >= 0) return invalid_input("{}: term '{}' has two ellipses", node.describe(), text);
      t.ellipsis_at = static_cast<int>(t.letters.size());
      i += 2;
      continue;
    }
    const int l = letter_index(text[i]);
    if (l < 0)
      return invalid_input("{}: term '{}' holds '{}' (expected letters and '...')", node.describe(), text, text[i]);
    t.letters.push_back(l);
  }
  return t;
}

// The equation's terms; `has_output` false for the implicit form.
struct Equation {
  std::vector<Term> inputs;
  Term output;
  bool has_output = false;
};

// Splits "a,b->c" (spaces removed) into the input terms and the output.
Result<Equation> parse_equation(const Node& node) {
  std::string eq;
  for (char c : node.attr_string("equation", ""))
    if (!std::isspace(static_cast<unsigned char>(c))) eq += c;
  if (eq.empty()) return invalid_input("{}: needs the 'equation' attribute", node.describe());
  Equation e;
  if (const auto arrow = eq.find("->"); arrow != std::string::npos) {
    CP_ASSIGN_OR_RETURN(e.output, parse_term(node, eq.substr(arrow + 2)));
    e.has_output = true;
    eq.resize(arrow);
  }
  size_t start = 0;
  while (true) {
    const size_t comma = eq.find(',', start);
    CP_ASSIGN_OR_RETURN(Term t, parse_term(node, eq.substr(start, comma - start)));
    e.inputs.push_back(std::move(t));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return e;
}

// Sets the size of `label`, checking it against earlier uses; an ellipsis
// axis of size 1 broadcasts.
Status bind_size(const Node& node, Plan& plan, int label, int64_t size, bool broadcast) {
  int64_t& known = plan.label_size[static_cast<size_t>(label)];
  if (known < 0 || (broadcast && known == 1)) known = size;
  else if (size != known && !(broadcast && size == 1))
    return invalid_input("{}: index {} has size {} in one operand and {} in another", node.describe(),
                         label < kLetters ? fmt::format("'{}'", letter_of(label))
                                          : fmt::format("of the ellipsis (axis {})", label - kLetters),
                         known, size);
  return {};
}

}  // namespace

Result<Plan> make_plan(const Node& node, std::span<const Shape> shapes) {
  CP_ASSIGN_OR_RETURN(const Equation parsed, parse_equation(node));
  const std::vector<Term>& terms = parsed.inputs;
  const Term* output = parsed.has_output ? &parsed.output : nullptr;
  if (terms.size() != shapes.size())
    return invalid_input("{}: the equation has {} operands but the node {} inputs", node.describe(), terms.size(),
                         shapes.size());
  // The ellipsis covers the axes the letters leave; its axes align from the right.
  size_t ellipsis_rank = 0;
  for (size_t i = 0; i < terms.size(); ++i) {
    const size_t rank = shapes[i].size(), letters = terms[i].letters.size();
    if (terms[i].ellipsis_at < 0 ? rank != letters : rank < letters)
      return invalid_input("{}: operand {} has rank {} but its term names {} axes{}", node.describe(), i, rank, letters,
                           terms[i].ellipsis_at < 0 ? "" : " and an ellipsis");
    if (terms[i].ellipsis_at >= 0) ellipsis_rank = std::max(ellipsis_rank, rank - letters);
  }
  Plan plan;
  plan.label_size.assign(kLetters + ellipsis_rank, -1);
  std::array<int, kLetters> count{};
  for (size_t i = 0; i < terms.size(); ++i) {
    const Term& t = terms[i];
    const size_t covered = shapes[i].size() - t.letters.size();
    std::vector<int> labels;
    for (size_t k = 0; k <= t.letters.size(); ++k) {
      if (static_cast<int>(k) == t.ellipsis_at)
        for (size_t e = 0; e < covered; ++e) labels.push_back(kLetters + static_cast<int>(ellipsis_rank - covered + e));
      if (k < t.letters.size()) {
        labels.push_back(t.letters[k]);
        ++count[static_cast<size_t>(t.letters[k])];
      }
    }
    for (size_t a = 0; a < labels.size(); ++a)
      CP_TRY(bind_size(node, plan, labels[a], shapes[i][a], labels[a] >= kLetters));
    plan.operands.push_back(std::move(labels));
  }
  if (output) {
    for (size_t k = 0; k <= output->letters.size(); ++k) {
      if (static_cast<int>(k) == output->ellipsis_at)
        for (size_t e = 0; e < ellipsis_rank; ++e) plan.output.push_back(kLetters + static_cast<int>(e));
      if (k == output->letters.size()) break;
      const int l = output->letters[k];
      if (count[static_cast<size_t>(l)] == 0)
        return invalid_input("{}: output index '{}' appears in no operand", node.describe(), letter_of(l));
      if (std::count(output->letters.begin(), output->letters.end(), l) > 1)
        return invalid_input("{}: output index '{}' appears twice", node.describe(), letter_of(l));
      plan.output.push_back(l);
    }
  } else {  // implicit: the ellipsis, then the letters used once, in order
    for (size_t e = 0; e < ellipsis_rank; ++e) plan.output.push_back(kLetters + static_cast<int>(e));
    for (int l = 0; l < kLetters; ++l)
      if (count[static_cast<size_t>(l)] == 1) plan.output.push_back(l);
  }
  for (int l : plan.output) plan.output_shape.push_back(plan.label_size[static_cast<size_t>(l)]);
  return plan;
}

namespace {

Result<std::vector<TensorType>> infer_einsum(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(tensor_ops::check_all_present(node, inputs));
  if (inputs.empty()) return invalid_input("{}: needs at least one input", node.describe());
  CP_TRY(tensor_ops::check_dtype(node, inputs[0], 0, tensor_ops::Accepts::numeric));
  CP_TRY(tensor_ops::check_same_dtype(node, inputs, 0, inputs.size()));
  CP_TRY(tensor_ops::check_output_count(node, 1));
  CP_ASSIGN_OR_RETURN(Plan plan, make_plan(node, tensor_ops::input_shapes(inputs)));
  return std::vector<TensorType>{{inputs[0].type.dtype, plan.output_shape}};
}

// Det: [*, M, M] -> [*].
Result<std::vector<TensorType>> infer_det(const Node& node, std::span<const InferInput> inputs) {
  CP_TRY(tensor_ops::check_inputs(node, inputs, 1, 1));
  CP_TRY(tensor_ops::check_output_count(node, 1));
  CP_TRY(tensor_ops::check_dtype(node, inputs[0], 0, tensor_ops::Accepts::floating));
  const Shape& x = inputs[0].type.shape;
  if (x.size() < 2 || x[x.size() - 1] != x[x.size() - 2])
    return invalid_input("{}: the input has shape {}; Det needs square matrices in the last two axes", node.describe(),
                         shape_str(x));
  return std::vector<TensorType>{{inputs[0].type.dtype, Shape(x.begin(), x.end() - 2)}};
}

}  // namespace

}  // namespace caliprox::einsum

namespace caliprox {

void register_linalg_ops(std::vector<OpDef>& table) {
  table.push_back({"Einsum", einsum::infer_einsum});
  table.push_back({"Det", einsum::infer_det});
}

}  // namespace caliprox
