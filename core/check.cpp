#include "core/check.h"

namespace lapis {

void throw_error(const char* /*file*/, int /*line*/, const std::string& message) {
  // The source location is deliberately left out of the message: users see the op and values,
  // which is what they can act on. A debugger breakpoint here finds the call site.
  throw Error(message);
}

}  // namespace lapis
