#include "experiment/schema_validator.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <set>
#include <tuple>

#include <fmt/format.h>

namespace caliprox {

using nlohmann::json;

namespace {

// Keywords whose value is a schema, a list of schemas or a map of schemas.
const std::set<std::string> kSchemaKeywords = {"additionalProperties", "propertyNames", "items"};
const std::set<std::string> kSchemaListKeywords = {"prefixItems", "oneOf", "anyOf", "allOf"};
const std::set<std::string> kSchemaMapKeywords = {"$defs", "properties"};
// Keywords whose value is data.
const std::set<std::string> kValueKeywords = {
    "$ref",      "type",      "const",     "enum",     "minimum",     "maximum",
    "exclusiveMinimum",       "exclusiveMaximum",      "minLength",   "maxLength",
    "pattern",   "minItems",  "maxItems",  "uniqueItems",             "required",
    "minProperties",          "maxProperties"};
const std::set<std::string> kAnnotations = {"$schema", "$id",      "$comment", "title",
                                            "description",         "default",  "examples",
                                            "x-expected"};
const std::set<std::string> kTypeNames = {"null",   "boolean", "object", "array",
                                          "number", "integer", "string"};

void walk_schema(const json& schema, const std::string& pointer,
                 const std::function<void(const json&, const std::string&)>& visit) {
  visit(schema, pointer);
  if (!schema.is_object()) return;
  for (const auto& [key, value] : schema.items()) {
    std::string here = pointer + "/" + key;
    if (kSchemaKeywords.contains(key)) {
      walk_schema(value, here, visit);
    } else if (kSchemaListKeywords.contains(key) && value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) walk_schema(value[i], here + "/" + std::to_string(i), visit);
    } else if (kSchemaMapKeywords.contains(key) && value.is_object()) {
      for (const auto& [name, sub] : value.items()) walk_schema(sub, here + "/" + name, visit);
    }
  }
}

bool is_whole(const json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  double d = v.get<double>();
  return std::isfinite(d) && d == std::floor(d);
}

bool type_matches(const std::string& type, const json& v) {
  if (type == "integer") return is_whole(v);
  if (type == "number") return v.is_number();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "null") return v.is_null();
  return false;
}

bool any_type_matches(const json& types, const json& v) {
  if (types.is_string()) return type_matches(types.get<std::string>(), v);
  for (const json& t : types) {
    if (type_matches(t.get<std::string>(), v)) return true;
  }
  return false;
}

std::string type_phrase(const std::string& type, bool plural) {
  if (type == "integer") return plural ? "integers" : "an integer";
  if (type == "number") return plural ? "numbers" : "a number";
  if (type == "string") return plural ? "strings" : "a string";
  if (type == "boolean") return plural ? "booleans (true or false)" : "a boolean (true or false)";
  if (type == "object") return plural ? "mappings" : "a mapping";
  if (type == "array") return plural ? "lists" : "a list";
  return plural ? "nulls" : "nothing (null)";
}

std::string types_phrase(const json& types, bool plural = false) {
  if (types.is_string()) return type_phrase(types.get<std::string>(), plural);
  std::vector<std::string> parts;
  for (const json& t : types) parts.push_back(type_phrase(t.get<std::string>(), plural));
  return fmt::format("{}", fmt::join(parts, " or "));
}

std::string literal(const json& v) {
  return v.is_string() ? fmt::format("'{}'", v.get<std::string>()) : v.dump();
}

size_t utf8_length(const std::string& s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string count_phrase(size_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

}  // namespace

size_t edit_distance(std::string_view a, std::string_view b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  // Case is ignored: 'nchw' should suggest 'NCHW'.
  const std::string folded = lower(word);
  for (const std::string& c : candidates) {
    size_t d = edit_distance(folded, lower(c));
    size_t allowed = std::max<size_t>(1, std::max(word.size(), c.size()) / 3);
    if (d <= allowed && d < word.size() && d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::vector<std::string> unimplemented_schema_keywords(const json& schema) {
  std::vector<std::string> found;
  walk_schema(schema, "", [&](const json& s, const std::string& pointer) {
    if (s.is_boolean()) return;
    if (!s.is_object()) {
      found.push_back(fmt::format("{}: not a schema ({})", pointer, s.dump()));
      return;
    }
    for (const auto& [key, value] : s.items()) {
      if (kSchemaKeywords.contains(key) || kSchemaListKeywords.contains(key) ||
          kSchemaMapKeywords.contains(key) || kValueKeywords.contains(key) ||
          kAnnotations.contains(key)) {
        continue;
      }
      found.push_back(fmt::format("{}: {}", pointer, key));
    }
  });
  return found;
}

struct SchemaValidator::Errors {
  std::vector<SchemaError> list;
  size_t max = 64;
  bool full() const { return list.size() >= max; }
  void add(const KeyPath& path, std::string message) {
    if (!full()) list.push_back({path, path, false, std::move(message)});
  }
  void add(SchemaError e) {
    if (!full()) list.push_back(std::move(e));
  }
};

Result<SchemaValidator> SchemaValidator::create(json schema) {
  SchemaValidator v;
  v.schema_ = std::move(schema);
  std::vector<std::string> problems = unimplemented_schema_keywords(v.schema_);
  walk_schema(v.schema_, "", [&](const json& s, const std::string& pointer) {
    if (!s.is_object()) return;
    if (auto it = s.find("$ref"); it != s.end()) {
      std::string ref = it->is_string() ? it->get<std::string>() : "";
      bool ok = ref.starts_with("#");
      if (ok) {
        try {
          (void)v.schema_.at(json::json_pointer(ref.substr(1)));
        } catch (const json::exception&) {
          ok = false;
        }
      }
      if (!ok) problems.push_back(fmt::format("{}: $ref {} does not resolve", pointer, it->dump()));
    }
    if (auto it = s.find("type"); it != s.end()) {
      json types = it->is_array() ? *it : json::array({*it});
      for (const json& t : types) {
        if (!t.is_string() || !kTypeNames.contains(t.get<std::string>())) {
          problems.push_back(fmt::format("{}: unknown type {}", pointer, t.dump()));
        }
      }
    }
    if (auto it = s.find("pattern"); it != s.end()) {
      std::string p = it->is_string() ? it->get<std::string>() : "";
      try {
        v.patterns_.emplace(p, std::regex(p, std::regex::ECMAScript));
      } catch (const std::regex_error& e) {
        problems.push_back(fmt::format("{}: invalid pattern {}: {}", pointer, it->dump(), e.what()));
      }
    }
  });
  if (!problems.empty()) {
    return runtime_error("invalid experiment schema: {}", fmt::join(problems, "; "));
  }
  return v;
}

std::vector<SchemaError> SchemaValidator::validate(const json& instance, size_t max_errors) const {
  Errors out;
  out.max = max_errors;
  check(schema_, instance, KeyPath(), out);
  return std::move(out.list);
}

const json& SchemaValidator::resolve(const json& schema) const {
  const json* s = &schema;
  // create() checked every $ref; a chain of plain references ends somewhere.
  for (int depth = 0; s->is_object() && s->contains("$ref") && depth < 32; ++depth) {
    s = &schema_.at(json::json_pointer(s->at("$ref").get<std::string>().substr(1)));
  }
  return *s;
}

std::string SchemaValidator::describe_schema(const json& raw) const {
  const json& schema = resolve(raw);
  if (!schema.is_object()) return "anything";
  if (auto it = schema.find("x-expected"); it != schema.end()) return it->get<std::string>();
  if (auto it = schema.find("const"); it != schema.end()) return literal(*it);
  if (auto it = schema.find("enum"); it != schema.end()) {
    std::vector<std::string> values;
    for (const json& v : *it) values.push_back(literal(v));
    return fmt::format("one of {}", fmt::join(values, ", "));
  }
  auto type = schema.find("type");
  if (type == schema.end()) return "a value";
  std::string phrase = types_phrase(*type);
  if (*type == "array" && schema.contains("items")) {
    const json& items = resolve(schema.at("items"));
    if (items.is_object() && items.contains("type")) phrase = "a list of " + types_phrase(items.at("type"), true);
  }
  return phrase;
}

void SchemaValidator::check(const json& schema, const json& value, const KeyPath& path,
                            Errors& out) const {
  if (out.full()) return;
  if (schema.is_boolean()) {
    if (!schema.get<bool>()) out.add(path, fmt::format("nothing is allowed here, found {}", describe_json_value(value)));
    return;
  }
  if (auto it = schema.find("$ref"); it != schema.end()) {
    check(resolve(schema), value, path, out);
  }
  if (auto it = schema.find("type"); it != schema.end() && !any_type_matches(*it, value)) {
    // Further keywords would only repeat the same mistake in other words.
    out.add(path, fmt::format("expected {}, found {}", types_phrase(*it), describe_json_value(value)));
    return;
  }
  if (auto it = schema.find("const"); it != schema.end() && *it != value) {
    out.add(path, fmt::format("expected {}, found {}", literal(*it), describe_json_value(value)));
    return;
  }
  if (auto it = schema.find("enum"); it != schema.end()) {
    if (std::find(it->begin(), it->end(), value) == it->end()) {
      std::vector<std::string> names, shown;
      for (const json& e : *it) {
        shown.push_back(literal(e));
        if (e.is_string()) names.push_back(e.get<std::string>());
      }
      std::string message = fmt::format("expected one of {}, found {}", fmt::join(shown, ", "),
                                        describe_json_value(value));
      if (value.is_string()) {
        std::string hint = closest_match(value.get<std::string>(), names);
        if (!hint.empty()) message += fmt::format(" (did you mean '{}'?)", hint);
      }
      out.add(path, message);
      return;
    }
  }
  if (value.is_number()) check_number(schema, value, path, out);
  if (value.is_string()) check_string(schema, value, path, out);
  if (value.is_array()) check_array(schema, value, path, out);
  if (value.is_object()) check_object(schema, value, path, out);
  check_alternatives(schema, value, path, out);
}

void SchemaValidator::check_number(const json& schema, const json& value, const KeyPath& path,
                                   Errors& out) const {
  double x = value.get<double>();
  std::vector<std::string> bounds;
  bool ok = true;
  auto bound = [&](const char* keyword, const char* op, auto holds) {
    auto it = schema.find(keyword);
    if (it == schema.end()) return;
    bounds.push_back(fmt::format("{} {}", op, it->dump()));
    if (!holds(it->get<double>())) ok = false;
  };
  bound("minimum", ">=", [&](double b) { return x >= b; });
  bound("exclusiveMinimum", ">", [&](double b) { return x > b; });
  bound("maximum", "<=", [&](double b) { return x <= b; });
  bound("exclusiveMaximum", "<", [&](double b) { return x < b; });
  if (ok) return;
  auto type = schema.find("type");
  std::string what = type != schema.end() ? types_phrase(*type) : "a number";
  out.add(path, fmt::format("expected {} {}, found {}", what, fmt::join(bounds, " and "),
                            describe_json_value(value)));
}

void SchemaValidator::check_string(const json& schema, const json& value, const KeyPath& path,
                                   Errors& out) const {
  const std::string& s = value.get_ref<const std::string&>();
  size_t length = utf8_length(s);
  if (auto it = schema.find("minLength"); it != schema.end() && length < it->get<size_t>()) {
    size_t n = it->get<size_t>();
    std::string what = n == 1 ? "a non-empty string"
                              : fmt::format("a string of at least {} characters", n);
    out.add(path, fmt::format("expected {}, found {}", what, describe_json_value(value)));
    return;
  }
  if (auto it = schema.find("maxLength"); it != schema.end() && length > it->get<size_t>()) {
    out.add(path, fmt::format("expected a string of at most {} characters, found one of {}",
                              it->get<size_t>(), length));
    return;
  }
  if (auto it = schema.find("pattern"); it != schema.end()) {
    const std::string& p = it->get_ref<const std::string&>();
    if (!std::regex_search(s, patterns_.at(p))) {
      std::string what = schema.contains("x-expected") ? schema.at("x-expected").get<std::string>()
                                                        : fmt::format("a string matching /{}/", p);
      out.add(path, fmt::format("expected {}, found {}", what, describe_json_value(value)));
    }
  }
}

void SchemaValidator::check_array(const json& schema, const json& value, const KeyPath& path,
                                  Errors& out) const {
  const size_t n = value.size();
  auto min_it = schema.find("minItems");
  auto max_it = schema.find("maxItems");
  size_t min_items = min_it != schema.end() ? min_it->get<size_t>() : 0;
  size_t max_items = max_it != schema.end() ? max_it->get<size_t>() : SIZE_MAX;
  if (n < min_items || n > max_items) {
    std::string what;
    if (schema.contains("x-expected")) what = schema.at("x-expected").get<std::string>();
    else if (min_items == max_items) what = fmt::format("a list of exactly {}", count_phrase(min_items, "item", "items"));
    else if (n < min_items) what = fmt::format("a list of at least {}", count_phrase(min_items, "item", "items"));
    else what = fmt::format("a list of at most {}", count_phrase(max_items, "item", "items"));
    out.add(path, fmt::format("expected {}, found a list of {}", what, count_phrase(n, "item", "items")));
    return;
  }
  if (auto it = schema.find("uniqueItems"); it != schema.end() && it->get<bool>()) {
    for (size_t j = 1; j < n; ++j) {
      for (size_t i = 0; i < j; ++i) {
        if (value[i] == value[j]) {
          out.add(path.index(j), fmt::format("expected distinct values, found {} again (also item {})",
                                             describe_json_value(value[j]), i));
          break;
        }
      }
    }
  }
  size_t first_rest = 0;
  if (auto it = schema.find("prefixItems"); it != schema.end()) {
    first_rest = std::min(n, it->size());
    for (size_t i = 0; i < first_rest; ++i) check((*it)[i], value[i], path.index(i), out);
  }
  if (auto it = schema.find("items"); it != schema.end()) {
    for (size_t i = first_rest; i < n && !out.full(); ++i) check(*it, value[i], path.index(i), out);
  }
}

void SchemaValidator::check_object(const json& schema, const json& value, const KeyPath& path,
                                   Errors& out) const {
  if (auto it = schema.find("required"); it != schema.end()) {
    for (const json& name : *it) {
      if (!value.contains(name.get<std::string>())) {
        out.add({path, path, true, fmt::format("missing required key '{}'", name.get<std::string>())});
      }
    }
  }
  auto min_it = schema.find("minProperties");
  auto max_it = schema.find("maxProperties");
  if (min_it != schema.end() && value.size() < min_it->get<size_t>()) {
    out.add(path, fmt::format("expected at least {}, found {}",
                              count_phrase(min_it->get<size_t>(), "entry", "entries"),
                              count_phrase(value.size(), "entry", "entries")));
  }
  if (max_it != schema.end() && value.size() > max_it->get<size_t>()) {
    out.add(path, fmt::format("expected at most {}, found {}",
                              count_phrase(max_it->get<size_t>(), "entry", "entries"),
                              count_phrase(value.size(), "entry", "entries")));
  }
  static const json kNoProperties = json::object();
  auto props_it = schema.find("properties");
  const json& properties = props_it != schema.end() ? *props_it : kNoProperties;
  auto names_it = schema.find("propertyNames");
  auto additional_it = schema.find("additionalProperties");
  for (const auto& [key, child] : value.items()) {
    if (out.full()) return;
    KeyPath child_path = path.key(key);
    if (names_it != schema.end()) {
      Errors name_errors;
      check(*names_it, json(key), child_path, name_errors);
      for (SchemaError& e : name_errors.list) {
        out.add({path, child_path, true, fmt::format("invalid key '{}': {}", key, e.message)});
      }
    }
    if (auto p = properties.find(key); p != properties.end()) {
      check(*p, child, child_path, out);
    } else if (additional_it != schema.end()) {
      if (additional_it->is_boolean() && !additional_it->get<bool>()) {
        std::vector<std::string> allowed;
        for (const auto& [name, sub] : properties.items()) allowed.push_back(name);
        std::string hint = closest_match(key, allowed);
        std::string message =
            !hint.empty() ? fmt::format("unknown key '{}' (did you mean '{}'?)", key, hint)
            : allowed.empty() ? fmt::format("unknown key '{}' (no keys are allowed here)", key)
                              : fmt::format("unknown key '{}' (allowed: {})", key, fmt::join(allowed, ", "));
        out.add({path, child_path, true, message});
      } else {
        check(*additional_it, child, child_path, out);
      }
    }
  }
}

void SchemaValidator::check_alternatives(const json& schema, const json& value, const KeyPath& path,
                                         Errors& out) const {
  if (auto it = schema.find("allOf"); it != schema.end()) {
    for (const json& sub : *it) check(sub, value, path, out);
  }
  for (const char* keyword : {"anyOf", "oneOf"}) {
    auto it = schema.find(keyword);
    if (it == schema.end()) continue;
    std::vector<Errors> branch_errors(it->size());
    size_t passing = 0;
    for (size_t i = 0; i < it->size(); ++i) {
      check((*it)[i], value, path, branch_errors[i]);
      if (branch_errors[i].list.empty()) ++passing;
    }
    std::vector<std::string> descriptions;
    for (const json& sub : *it) descriptions.push_back(describe_schema(sub));
    if (passing == 0) {
      // When only one alternative has the right shape, its own complaint is
      // the useful one ("mean[2]: expected a number"), not the list of shapes.
      std::vector<size_t> same_type;
      for (size_t i = 0; i < it->size(); ++i) {
        const json& sub = resolve((*it)[i]);
        if (!sub.is_object() || !sub.contains("type") || any_type_matches(sub.at("type"), value)) {
          same_type.push_back(i);
        }
      }
      if (same_type.size() == 1) {
        for (SchemaError& e : branch_errors[same_type[0]].list) out.add(std::move(e));
      } else {
        out.add(path, fmt::format("expected {}, found {}", fmt::join(descriptions, " or "),
                                  describe_json_value(value)));
      }
    } else if (passing > 1 && std::string_view(keyword) == "oneOf") {
      out.add(path, fmt::format("expected exactly one of {}, found {} which matches several",
                                fmt::join(descriptions, " / "), describe_json_value(value)));
    }
  }
}

Status validate_document(const SchemaValidator& validator, const YamlDocument& doc,
                         size_t max_reported) {
  return report_errors(doc, validator.validate(doc.root), max_reported);
}

Status report_errors(const YamlDocument& doc, const std::vector<SchemaError>& errors,
                     size_t max_reported) {
  if (errors.empty()) return {};
  struct Located {
    SourceMark mark;
    std::string text;
  };
  std::vector<Located> located;
  for (const SchemaError& e : errors) {
    located.push_back({doc.mark(e.where, e.at_key), doc.message_at(e.path, e.where, e.at_key, e.message)});
  }
  std::sort(located.begin(), located.end(), [](const Located& a, const Located& b) {
    return std::tie(a.mark, a.text) < std::tie(b.mark, b.text);
  });
  located.erase(std::unique(located.begin(), located.end(),
                            [](const Located& a, const Located& b) { return a.text == b.text; }),
                located.end());
  std::vector<std::string> lines;
  for (size_t i = 0; i < located.size() && i < max_reported; ++i) lines.push_back(located[i].text);
  if (located.size() > max_reported) {
    lines.push_back(fmt::format("({} more {} not shown)", located.size() - max_reported,
                                located.size() - max_reported == 1 ? "error" : "errors"));
  }
  return invalid_input("{}", fmt::join(lines, "\n"));
}

}  // namespace caliprox
