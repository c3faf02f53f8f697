#include "experiment/yaml_json.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace caliprox {

using nlohmann::json;

KeyPath KeyPath::key(std::string name) const {
  KeyPath p = *this;
  p.tokens_.push_back({std::move(name), -1});
  return p;
}

KeyPath KeyPath::index(size_t i) const {
  KeyPath p = *this;
  p.tokens_.push_back({{}, static_cast<int64_t>(i)});
  return p;
}

KeyPath KeyPath::parent() const {
  KeyPath p = *this;
  if (!p.tokens_.empty()) p.tokens_.pop_back();
  return p;
}

std::string KeyPath::pointer() const {
  std::string out;
  for (const Token& t : tokens_) {
    out += '/';
    if (t.index >= 0) {
      out += std::to_string(t.index);
      continue;
    }
    for (char c : t.key) {
      if (c == '~') out += "~0";
      else if (c == '/') out += "~1";
      else out += c;
    }
  }
  return out;
}

namespace {

bool is_plain_name(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string KeyPath::dotted() const {
  if (tokens_.empty()) return "top level";
  std::string out;
  for (const Token& t : tokens_) {
    if (t.index >= 0) {
      out += fmt::format("[{}]", t.index);
    } else if (is_plain_name(t.key)) {
      if (!out.empty()) out += '.';
      out += t.key;
    } else {
      // Keys with dots or spaces would make the dotted form ambiguous.
      out += fmt::format("[{}]", json(t.key).dump());
    }
  }
  return out;
}

SourceMark YamlDocument::mark(const KeyPath& path, bool at_key) const {
  KeyPath p = path;
  while (true) {
    auto it = marks.find(p.pointer());
    if (it != marks.end()) {
      const NodeMarks& m = it->second;
      if (at_key && m.key.known()) return m.key;
      if (m.value.known()) return m.value;
      if (m.key.known()) return m.key;
    }
    if (p.is_root()) return {};
    p = p.parent();
  }
}

std::string YamlDocument::message_at(const KeyPath& shown, const KeyPath& where, bool at_key,
                                     std::string_view message) const {
  SourceMark m = mark(where, at_key);
  if (m.known()) return fmt::format("{}:{}:{}: {}: {}", file, m.line, m.column, shown.dotted(), message);
  return fmt::format("{}: {}: {}", file, shown.dotted(), message);
}

std::string describe_json_value(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "nothing (an empty value)";
    case json::value_t::object: return "a mapping";
    case json::value_t::array: return "a list";
    case json::value_t::boolean: return value.get<bool>() ? "true" : "false";
    case json::value_t::number_integer: return std::to_string(value.get<int64_t>());
    case json::value_t::number_unsigned: return std::to_string(value.get<uint64_t>());
    case json::value_t::number_float: return fmt::format("{}", value.get<double>());
    case json::value_t::string: {
      std::string s = value.get<std::string>();
      constexpr size_t kMax = 60;
      if (s.size() > kMax) s = s.substr(0, kMax) + "...";
      return fmt::format("a string '{}'", s);
    }
    default: return "a value";
  }
}

namespace {

constexpr std::string_view kTagPrefix = "tag:yaml.org,2002:";

SourceMark to_mark(const YAML::Mark& m) {
  if (m.is_null() || m.line < 0) return {};
  return {m.line + 1, m.column + 1};
}

class Converter {
 public:
  explicit Converter(YamlDocument& doc) : doc_(doc) {}

  Status convert(const YAML::Node& node, const KeyPath& path, json& out) {
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out = nullptr;
        return {};
      case YAML::NodeType::Scalar:
        return convert_scalar(node, path, out);
      case YAML::NodeType::Sequence: {
        CP_TRY(check_collection_tag(node, path, "seq"));
        out = json::array();
        size_t i = 0;
        for (const YAML::Node& item : node) {
          KeyPath child = path.index(i++);
          doc_.marks[child.pointer()].value = to_mark(item.Mark());
          json value;
          CP_TRY(convert(item, child, value));
          out.push_back(std::move(value));
        }
        return {};
      }
      case YAML::NodeType::Map:
        return convert_map(node, path, out);
    }
    return {};
  }

 private:
  Status error(const KeyPath& shown, SourceMark at, std::string_view message) {
    if (at.known()) {
      return invalid_input("{}:{}:{}: {}: {}", doc_.file, at.line, at.column, shown.dotted(), message);
    }
    return invalid_input("{}: {}: {}", doc_.file, shown.dotted(), message);
  }

  Status check_collection_tag(const YAML::Node& node, const KeyPath& path, std::string_view kind) {
    const std::string& tag = node.Tag();
    if (tag.empty() || tag == "?" || tag == "!" || tag == fmt::format("{}{}", kTagPrefix, kind)) return {};
    return error(path, to_mark(node.Mark()), fmt::format("unsupported YAML tag '{}'", tag));
  }

  Status convert_map(const YAML::Node& node, const KeyPath& path, json& out) {
    CP_TRY(check_collection_tag(node, path, "map"));
    out = json::object();
    for (auto it = node.begin(); it != node.end(); ++it) {
      // it-> yields a proxy that dies with the expression: copy the handles.
      const YAML::Node key_node = it->first;
      const YAML::Node value_node = it->second;
      SourceMark key_mark = to_mark(key_node.Mark());
      if (!key_node.IsScalar()) {
        return error(path, key_mark, "expected a plain key (a name), found a list or mapping used as a key");
      }
      std::string key = key_node.Scalar();
      KeyPath child = path.key(key);
      std::string pointer = child.pointer();
      if (out.contains(key)) {
        SourceMark first = doc_.marks[pointer].key;
        return error(path, key_mark,
                     fmt::format("duplicate key '{}' (first defined at line {}, column {})", key,
                                 first.line, first.column));
      }
      NodeMarks& marks = doc_.marks[pointer];
      marks.key = key_mark;
      // yaml-cpp places an empty value ("labels:") at the start of the next
      // line; the key is where people look for it.
      marks.value = value_node.IsNull() ? key_mark : to_mark(value_node.Mark());
      json value;
      CP_TRY(convert(value_node, child, value));
      out[key] = std::move(value);
    }
    return {};
  }

  Status convert_scalar(const YAML::Node& node, const KeyPath& path, json& out) {
    const std::string& tag = node.Tag();
    const std::string& text = node.Scalar();
    SourceMark at = to_mark(node.Mark());
    // "!" is the non-specific tag yaml-cpp gives quoted and block scalars.
    if (tag == "!" || tag == fmt::format("{}str", kTagPrefix)) {
      out = text;
      return {};
    }
    if (tag == "?" || tag.empty()) {
      out = resolve_plain(text);
      return {};
    }
    if (tag.starts_with(kTagPrefix)) {
      std::string_view kind = std::string_view(tag).substr(kTagPrefix.size());
      json value = resolve_plain(text);
      bool ok = (kind == "int" && value.is_number_integer()) ||
                (kind == "float" && value.is_number()) || (kind == "bool" && value.is_boolean()) ||
                (kind == "null" && value.is_null());
      if (ok) {
        out = kind == "float" ? json(value.get<double>()) : std::move(value);
        return {};
      }
      if (kind == "int" || kind == "float" || kind == "bool" || kind == "null") {
        return error(path, at, fmt::format("'{}' is not a valid !!{}", text, kind));
      }
    }
    return error(path, at, fmt::format("unsupported YAML tag '{}'", tag));
  }

  // YAML 1.2 core schema resolution of a plain scalar.
  static json resolve_plain(const std::string& text) {
    static const std::regex kNull("~|null|Null|NULL|");
    static const std::regex kTrue("true|True|TRUE");
    static const std::regex kFalse("false|False|FALSE");
    static const std::regex kInt("[-+]?[0-9]+");
    static const std::regex kHex("0x[0-9a-fA-F]+");
    static const std::regex kOct("0o[0-7]+");
    static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
    static const std::regex kInf("[-+]?\\.(inf|Inf|INF)");
    static const std::regex kNan("\\.(nan|NaN|NAN)");

    if (std::regex_match(text, kNull)) return nullptr;
    if (std::regex_match(text, kTrue)) return true;
    if (std::regex_match(text, kFalse)) return false;
    const char* begin = text.data();
    const char* end = text.data() + text.size();
    if (std::regex_match(text, kInt)) {
      const char* digits = begin + (text[0] == '+' ? 1 : 0);
      int64_t v = 0;
      if (std::from_chars(digits, end, v).ec == std::errc()) return v;
      uint64_t u = 0;
      if (std::from_chars(digits, end, u).ec == std::errc()) return u;
      // Too large for 64 bits: keep its magnitude as a float.
    }
    if (std::regex_match(text, kHex) || std::regex_match(text, kOct)) {
      uint64_t u = 0;
      int base = text[1] == 'x' ? 16 : 8;
      if (std::from_chars(begin + 2, end, u, base).ec == std::errc()) {
        if (u <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(u);
        return u;
      }
      return text;
    }
    if (std::regex_match(text, kFloat) || std::regex_match(text, kInt)) {
      const char* digits = begin + (text[0] == '+' ? 1 : 0);
      double d = 0;
      if (std::from_chars(digits, end, d).ec == std::errc()) return d;
      return text;
    }
    if (std::regex_match(text, kInf)) {
      return text[0] == '-' ? -std::numeric_limits<double>::infinity()
                            : std::numeric_limits<double>::infinity();
    }
    if (std::regex_match(text, kNan)) return std::numeric_limits<double>::quiet_NaN();
    return text;
  }

  YamlDocument& doc_;
};

}  // namespace

Result<YamlDocument> parse_yaml(std::string_view text, std::string file) {
  YamlDocument doc;
  doc.file = std::move(file);
  std::vector<YAML::Node> nodes;
  try {
    nodes = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    SourceMark m = to_mark(e.mark);
    if (m.known()) return invalid_input("{}:{}:{}: malformed YAML: {}", doc.file, m.line, m.column, e.msg);
    return invalid_input("{}: malformed YAML: {}", doc.file, e.msg);
  }
  if (nodes.size() > 1) {
    SourceMark m = to_mark(nodes[1].Mark());
    return invalid_input("{}:{}:{}: malformed YAML: expected one document, found {}", doc.file,
                         m.line, m.column, nodes.size());
  }
  if (nodes.empty()) {
    doc.root = nullptr;
    doc.marks[""].value = {1, 1};
    return doc;
  }
  doc.marks[""].value = to_mark(nodes[0].Mark());
  Converter converter(doc);
  try {
    CP_TRY(converter.convert(nodes[0], KeyPath(), doc.root));
  } catch (const std::exception& e) {
    // yaml-cpp can throw while walking alias-heavy documents; report, never propagate.
    return invalid_input("{}: malformed YAML: {}", doc.file, e.what());
  }
  return doc;
}

Result<YamlDocument> read_yaml_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return invalid_input("{}: expected a YAML file, found a directory", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_input("{}: cannot open file: {}", path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return invalid_input("{}: cannot read file: {}", path, std::strerror(errno));
  return parse_yaml(text.str(), path);
}

}  // namespace caliprox
