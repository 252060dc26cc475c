// Errors and argument checks used everywhere in Lapis.
//
// Library code never exits: every failure throws lapis::Error with a message that names the op,
// the shapes involved and the offending value, e.g.
//   "linear_forward: x has 63 columns but weight has 64 (x [128, 63], weight [32, 64])".
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lapis {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename T, typename... Rest>
void append_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append_all(os, rest...);
}
}  // namespace detail

// Concatenates any streamable values into one string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append_all(os, args...);
  return os.str();
}

[[noreturn]] void throw_error(const char* file, int line, const std::string& message);

}  // namespace lapis

// LAPIS_CHECK(cond, op, parts...): throws lapis::Error("op: parts...") when cond is false.
// The message is built only on failure.
#define LAPIS_CHECK(cond, op, ...)                                                   \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      ::lapis::throw_error(__FILE__, __LINE__, ::lapis::str_cat(op, ": ", __VA_ARGS__)); \
    }                                                                                \
  } while (0)

#define LAPIS_FAIL(op, ...) \
  ::lapis::throw_error(__FILE__, __LINE__, ::lapis::str_cat(op, ": ", __VA_ARGS__))
