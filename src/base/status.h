// Status and Result<T>: errors caused by outside input (files, flags, peers, HTTP bodies).
//
// Our own bugs use MESHLM_CHECK (check.h) instead. Messages name the component in
// brackets, the item and the values: "[safetensors] 'model.safetensors': header length
// 99999999999 exceeds file size 1024".
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace meshlm {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Error(std::string message) {
    Status s;
    s.message_ = std::move(message);
    s.failed_ = true;
    return s;
  }
  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }
  /// Returns a copy whose message is prefixed with `context` and ": ".
  Status With(const std::string& context) const {
    return ok() ? *this : Error(context + ": " + message_);
  }

 private:
  std::string message_;
  bool failed_ = false;
};

inline Status OkStatus() { return Status(); }

/// Formats an error message with fmt syntax.
template <typename... Args>
Status Error(fmt::format_string<Args...> f, Args&&... args) {
  return Status::Error(fmt::format(f, std::forward<Args>(args)...));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status::Error("Result constructed from an ok Status");
  }
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace meshlm

#define MESHLM_CONCAT_INNER(a, b) a##b
#define MESHLM_CONCAT(a, b) MESHLM_CONCAT_INNER(a, b)

/// Returns the Status from the enclosing function when `expr` fails.
#define MESHLM_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::meshlm::Status meshlm_status_ = (expr);        \
    if (!meshlm_status_.ok()) return meshlm_status_; \
  } while (0)

/// `MESHLM_ASSIGN_OR_RETURN(auto x, MakeX());` unwraps a Result or returns its Status.
#define MESHLM_ASSIGN_OR_RETURN(lhs, expr) \
  MESHLM_ASSIGN_OR_RETURN_IMPL(MESHLM_CONCAT(meshlm_result_, __LINE__), lhs, expr)
#define MESHLM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
