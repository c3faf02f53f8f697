#pragma once
// Errors travel as values (DESIGN style rule 4): no exceptions cross module
// boundaries. Each error carries the exit-code class the CLI maps it to.
#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace caliprox {

enum class Errc {
  ok = 0,
  runtime = 1,         // the tool failed while doing valid work (exit 1)
  invalid_input = 2,   // usage / experiment / input error (exit 2)
  unsupported = 5,     // valid input that this build cannot handle (exit 2)
  goal_not_met = 3,    // exit 3
  unreachable = 4,     // target unreachable (exit 4)
  interrupted = 130,   // SIGINT / SIGTERM (exit 130)
};

int exit_code_for(Errc code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok_status() { return {}; }

  bool ok() const { return code_ == Errc::ok; }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  // Prefixes context ("while loading model.onnx: ...") keeping the code.
  Status with_context(std::string_view context) const {
    if (ok()) return *this;
    return Status(code_, fmt::format("{}: {}", context, message_));
  }

 private:
  Errc code_ = Errc::ok;
  std::string message_;
};

template <typename... Args>
Status invalid_input(fmt::format_string<Args...> f, Args&&... args) {
  return Status(Errc::invalid_input, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status unsupported(fmt::format_string<Args...> f, Args&&... args) {
  return Status(Errc::unsupported, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status runtime_error(fmt::format_string<Args...> f, Args&&... args) {
  return Status(Errc::runtime, fmt::format(f, std::forward<Args>(args)...));
}

// The error a Result made from a success status holds instead (see Result):
// file, line and function of the code that made it.
Status result_without_value(const char* file, int line, const char* function);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  // A Result holds a value or an error. One made from a success status would
  // hold neither: ok() false while status() says success, so a caller would
  // go on with no value and no error. That is a bug at the call site, and
  // the status is a run-time value there (`return st;`, CP_ASSIGN_OR_RETURN),
  // so it cannot be refused at compile time; an assert is compiled out of
  // release builds (the default build type). Rather than abort (a crash in
  // the middle of a long tune, and errors here travel as values: DESIGN
  // style rule 4), the success becomes an internal runtime error naming the
  // file and line that made the Result: the CLI reports it and exits 1.
  // (The __builtin_ defaults are the caller's position, in GCC and Clang;
  // std::source_location is missing from libstdc++ 12 under Clang 14.)
  Result(Status status, const char* file = __builtin_FILE(), int line = __builtin_LINE(),  // NOLINT: implicit
         const char* function = __builtin_FUNCTION())
      : v_(status.ok() ? result_without_value(file, line, function) : std::move(status)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status ok_status;
    return ok() ? ok_status : std::get<Status>(v_);
  }
  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace caliprox

#define CP_CONCAT_INNER(a, b) a##b
#define CP_CONCAT(a, b) CP_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` failed.
#define CP_TRY(expr)                                   \
  do {                                                 \
    ::caliprox::Status cp_status_ = (expr);            \
    if (!cp_status_.ok()) return cp_status_;           \
  } while (0)

// CP_ASSIGN_OR_RETURN(auto x, make_x()); propagates a failed Result.
#define CP_ASSIGN_OR_RETURN(lhs, expr) CP_ASSIGN_OR_RETURN_IMPL(CP_CONCAT(cp_result_, __LINE__), lhs, expr)
#define CP_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
