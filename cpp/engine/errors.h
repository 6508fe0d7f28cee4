#pragma once
// Error types of the core.  The bindings translate each into the Python exception of the same
// name in deepshop_native.core.errors, so that every failure reaches the user as an exception with a
// message naming the file and the reason, never as a crash.
#include <stdexcept>
#include <string>

namespace deepshop {

struct ModelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// An option has a value outside what it accepts (the message names the option and the accepted values).
struct OptionError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct RuntimeNotFoundError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A long run stopped because its progress callback asked for it (or Ctrl-C was pressed).
struct Cancelled : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace deepshop
