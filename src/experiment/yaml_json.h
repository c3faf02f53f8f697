#pragma once
// YAML -> JSON with a side table of source positions. Validation and the
// semantic checks work on plain JSON; the side table lets every error they
// find still name file:line:column (DESIGN: errors name the file and line).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace caliprox {

struct SourceMark {
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
  bool known() const { return line > 0; }
  auto operator<=>(const SourceMark&) const = default;
};

// A path from the document root through object keys and array indices.
class KeyPath {
 public:
  KeyPath() = default;
  KeyPath key(std::string name) const;   // child path through an object key
  KeyPath index(size_t i) const;         // child path through an array index
  KeyPath parent() const;                // the root's parent is the root
  bool is_root() const { return tokens_.empty(); }
  // RFC 6901 JSON pointer: "", "/dataset/splits/tune", "/targets/0/name".
  std::string pointer() const;
  // For people: "dataset.splits.tune", "targets[0].name"; "top level" for the root.
  std::string dotted() const;
  bool operator==(const KeyPath&) const = default;

 private:
  struct Token {
    std::string key;
    int64_t index = -1;  // >= 0 for array elements
    bool operator==(const Token&) const = default;
  };
  std::vector<Token> tokens_;
};

// Where a value came from: the key that introduced it (unknown for the root and
// array elements) and the value itself.
struct NodeMarks {
  SourceMark key;
  SourceMark value;
};

struct YamlDocument {
  std::string file;     // as given by the caller; used in messages
  nlohmann::json root;  // null for an empty file
  std::map<std::string, NodeMarks> marks;  // by KeyPath::pointer()

  // Position of the value at `path` (of its key when `at_key` and the key is
  // known), falling back to the nearest ancestor with a known position.
  SourceMark mark(const KeyPath& path, bool at_key = false) const;
  // "file:line:col: <shown>: message", the position taken from `where`.
  std::string message_at(const KeyPath& shown, const KeyPath& where, bool at_key,
                         std::string_view message) const;
  std::string message_at(const KeyPath& path, std::string_view message) const {
    return message_at(path, path, false, message);
  }
};

// Parses one YAML document. Plain scalars that read as YAML 1.2 core-schema
// integers, floats, booleans or nulls become JSON numbers, booleans and null;
// quoted and block scalars stay strings; explicit !!str/!!int/!!float/!!bool/!!null
// tags are honoured. Duplicate keys, several documents, non-scalar keys and
// unknown tags are errors. All errors are Errc::invalid_input "file:line:col: ...".
Result<YamlDocument> parse_yaml(std::string_view text, std::string file);

// Reads `path` and parses it; the message names `path` as given.
Result<YamlDocument> read_yaml_file(const std::string& path);

// "a mapping", "a list", "a string 'abc'", "the number 2.5", "nothing (null)":
// how a found value is named in messages. Long strings are shortened.
std::string describe_json_value(const nlohmann::json& value);

}  // namespace caliprox
