#pragma once
// A small JSON Schema (draft 2020-12 subset) validator. Written here rather
// than taken from a library so that every message can say, in a YAML user's
// words, what was expected and what was found, and point at the key.
//
// Implemented keywords (anything else in a schema is rejected by create()):
//   $ref (local "#/..." only), $defs, type (integer = whole number), const, enum,
//   minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength,
//   pattern (ECMAScript, unanchored like JSON Schema), items, prefixItems, minItems,
//   maxItems, uniqueItems, properties, required, additionalProperties (bool or schema),
//   propertyNames, minProperties, maxProperties, oneOf, anyOf, allOf.
// Annotations accepted and ignored: $schema, $id, $comment, title, description,
//   default, examples, and "x-expected" (how to describe a value this schema wants,
//   used in pattern and oneOf/anyOf messages instead of the raw regex or type list).
// Defaults are not applied: the converter that reads the document applies them.
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiment/yaml_json.h"
#include "util/status.h"

namespace caliprox {

struct SchemaError {
  KeyPath path;          // shown in the message
  KeyPath where;         // position the message points at
  bool at_key = false;   // point at the key of `where` rather than its value
  std::string message;   // "expected an integer, found a string 'x'", "unknown key ..."
};

class SchemaValidator {
 public:
  // Errc::runtime when the schema uses keywords this validator does not
  // implement, a $ref that does not resolve, or an invalid pattern: the schema
  // is part of the program, so that is a bug rather than bad input.
  static Result<SchemaValidator> create(nlohmann::json schema);

  // Errors in no particular order; at most `max_errors`.
  std::vector<SchemaError> validate(const nlohmann::json& instance, size_t max_errors = 64) const;

 private:
  struct Errors;
  SchemaValidator() = default;
  void check(const nlohmann::json& schema, const nlohmann::json& value, const KeyPath& path,
             Errors& out) const;
  void check_number(const nlohmann::json& schema, const nlohmann::json& value, const KeyPath& path,
                    Errors& out) const;
  void check_string(const nlohmann::json& schema, const nlohmann::json& value, const KeyPath& path,
                    Errors& out) const;
  void check_array(const nlohmann::json& schema, const nlohmann::json& value, const KeyPath& path,
                   Errors& out) const;
  void check_object(const nlohmann::json& schema, const nlohmann::json& value, const KeyPath& path,
                    Errors& out) const;
  void check_alternatives(const nlohmann::json& schema, const nlohmann::json& value,
                          const KeyPath& path, Errors& out) const;
  const nlohmann::json& resolve(const nlohmann::json& schema) const;
  std::string describe_schema(const nlohmann::json& schema) const;

  nlohmann::json schema_;
  std::map<std::string, std::regex> patterns_;  // compiled once by create()
};

// Schema keywords found in `schema` that SchemaValidator does not implement,
// each as "<JSON pointer>: <keyword>". Walks every subschema.
std::vector<std::string> unimplemented_schema_keywords(const nlohmann::json& schema);

// Errc::invalid_input listing up to `max_reported` of `errors`, one per line in
// file order, each "file:line:col: key.path: message"; ok when `errors` is empty.
Status report_errors(const YamlDocument& doc, const std::vector<SchemaError>& errors,
                     size_t max_reported = 5);
// Validates `doc.root` and reports as report_errors() does.
Status validate_document(const SchemaValidator& validator, const YamlDocument& doc,
                         size_t max_reported = 5);

// Restricted Damerau-Levenshtein distance (a swap of neighbours counts 1).
size_t edit_distance(std::string_view a, std::string_view b);
// The closest candidate when it is close enough to be a likely typo, else "".
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace caliprox
